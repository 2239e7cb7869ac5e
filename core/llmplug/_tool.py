"""``@tool``: a typed Python function the model may call, and running the calls it makes."""

from __future__ import annotations

import asyncio
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

import msgspec

from ._docstring import parse_docstring
from ._errors import ConfigError
from ._multimodal import tool_output
from ._prompt import render_value
from ._schema import parameters_schema
from ._types import ImagePart, Tool, ToolCall

__all__ = ["ToolFunction", "ToolResult", "Toolkit", "tool"]

P = ParamSpec("P")
R = TypeVar("R")


class ToolResult(msgspec.Struct, frozen=True):
    """The outcome of one tool call, as it is sent back to the model: text, and the images a
    tool returned (``ImgPath``, ``ImgUrl``, a list of them, or ``(text, images)``)."""

    call: ToolCall
    content: str
    is_error: bool = False
    images: tuple[ImagePart, ...] = ()


class ToolFunction(Generic[P, R]):
    """A function with the tool spec the model sees (``.spec``); calling it calls the function."""

    __name__: str
    __doc__: str | None

    def __init__(self, fn: Callable[P, R], name: str | None, description: str | None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self._fn: Callable[..., Any] = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        desc, arg_docs = parse_docstring(fn.__doc__)
        hints = typing.get_type_hints(fn, include_extras=True)
        fields: list[tuple[str, Any, Any]] = []
        #: Positional-only parameters cannot be passed by name when the tool runs.
        self._positional: list[str] = []
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigError(f"tool {fn.__name__!r}: *args and **kwargs cannot be described")
            if p.kind is p.POSITIONAL_ONLY:
                self._positional.append(p.name)
            default = msgspec.NODEFAULT if p.default is p.empty else p.default
            fields.append((p.name, hints.get(p.name, Any), default))
        try:
            parameters, self._args_type = parameters_schema(fields, arg_docs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"tool {fn.__name__!r}: a parameter type is not supported: {exc}"
            ) from None
        self.spec = Tool(
            name=name or fn.__name__,
            description=description or desc,
            parameters=parameters,
        )
        self.__llmplug_tool__ = self.spec

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.spec.name}>"

    async def run(self, call: ToolCall) -> ToolResult:
        """Validate the model's arguments and run the function; any failure becomes an error
        result the model can read and correct, never an exception in the caller's loop."""
        try:
            raw = call.parsed_arguments()
            args = msgspec.convert(raw, self._args_type)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return ToolResult(call, f"Error: invalid arguments for {self.spec.name}: {exc}", True)
        kwargs = msgspec.structs.asdict(args)
        positional = [kwargs.pop(n) for n in self._positional]
        try:
            if self.is_async:
                result: Any = await self._fn(*positional, **kwargs)
            else:
                # A blocking tool must not stall the other tool calls of the turn.
                result = await asyncio.to_thread(self._fn, *positional, **kwargs)
        except Exception as exc:
            return ToolResult(
                call, f"Error: {self.spec.name} raised {type(exc).__name__}: {exc}", True
            )
        try:
            with_images = tool_output(result)
        except (OSError, ValueError) as exc:
            return ToolResult(
                call, f"Error: {self.spec.name} returned an unusable image: {exc}", True
            )
        if with_images is not None:
            return ToolResult(call, with_images[0], images=tuple(with_images[1]))
        return ToolResult(call, render_value(result))


@overload
def tool(fn: Callable[P, R], /) -> ToolFunction[P, R]: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[P, R]], ToolFunction[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None, description: str | None = None
) -> ToolFunction[P, R] | Callable[[Callable[P, R]], ToolFunction[P, R]]:
    """Make a function a tool. The parameters' JSON schema comes from the signature (defaults,
    Optional, Literal, Enum, Structs, dataclasses, TypedDicts) and the docstring's Args section;
    the description from ``description`` or the docstring. Works on async and plain functions,
    with or without parentheses."""
    if fn is not None:
        return ToolFunction(fn, None, None)

    def wrap(f: Callable[P, R]) -> ToolFunction[P, R]:
        return ToolFunction(f, name, description)

    return wrap


class Toolkit:
    """The tools one decorated function offers, by name."""

    def __init__(self, tools: Iterable[Any] | None) -> None:
        self.tools: dict[str, ToolFunction[..., Any]] = {}
        for t in tools or ():
            tf = (
                t
                if isinstance(t, ToolFunction)
                else ToolFunction(t, None, None)
                if callable(t)
                else None
            )
            if tf is None:
                raise ConfigError(
                    f"toolkit entries must be functions or @tool functions, got {t!r}"
                )
            if tf.spec.name in self.tools:
                raise ConfigError(f"two tools are named {tf.spec.name!r}")
            self.tools[tf.spec.name] = tf

    def __bool__(self) -> bool:
        return bool(self.tools)

    @property
    def specs(self) -> list[Tool] | None:
        return [t.spec for t in self.tools.values()] or None

    async def run_all(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run one turn's calls concurrently; results in the calls' order."""
        return list(await asyncio.gather(*(self._run(c) for c in calls)))

    def _run(self, call: ToolCall) -> Awaitable[ToolResult]:
        t = self.tools.get(call.name)
        if t is None:
            known = ", ".join(self.tools) or "none"
            return _done(
                ToolResult(
                    call, f"Error: there is no tool named {call.name!r} (tools: {known})", True
                )
            )
        return t.run(call)


async def _done(result: ToolResult) -> ToolResult:
    return result
