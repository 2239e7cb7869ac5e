"""``@tool``: a typed Python function the model may call, and running the calls it makes."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

import msgspec

from llmplug._vocab._errors import ConfigError
from llmplug._vocab._types import ImagePart, Tool, ToolCall
from llmplug.wire import JSON_ERRORS

from ._docstring import parse_docstring
from ._hints import type_hints
from ._multimodal import tool_output
from ._prompt import render_value
from ._schema import is_pydantic_model, parameters_schema

__all__ = ["ToolFunction", "ToolResult", "Toolkit", "tool", "with_guidance"]

P = ParamSpec("P")
R = TypeVar("R")


PromptInjectionBuilder = Callable[[dict[str, Any]], str | None]


class ToolResult(msgspec.Struct, frozen=True):
    """The outcome of one tool call, as it is sent back to the model: text, and the images a
    tool returned (``ImgPath``, ``ImgUrl``, a list of them, or ``(text, images)``). A failed
    call's ``error_type`` names why (the exception's class, or ``UnknownTool``)."""

    call: ToolCall
    content: str
    is_error: bool = False
    images: tuple[ImagePart, ...] = ()
    error_type: str | None = None


class ToolFunction(Generic[P, R]):
    """A function with the tool spec the model sees (``.spec``); calling it calls the function."""

    __name__: str
    __doc__: str | None

    def __init__(
        self,
        fn: Callable[P, R],
        name: str | None,
        description: str | None,
        best_practices: Sequence[str] | None = None,
        prompt_injection_builder: PromptInjectionBuilder | None = None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self._fn: Callable[..., Any] = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        desc, arg_docs = parse_docstring(fn.__doc__)
        hints = type_hints(fn, include_extras=True)
        fields: list[tuple[str, Any, Any]] = []
        #: Positional-only parameters cannot be passed by name when the tool runs.
        self._positional: list[str] = []
        #: Parameters the caller supplies, never the model (llmplug.slf's ToolEventEmitter):
        #: parameter name -> the key the runner passes the value under.
        self._injected: dict[str, str] = {}
        #: Parameters typed with a pydantic model: validated into an instance of it.
        self._models: dict[str, Any] = {}
        for p in inspect.signature(fn).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise ConfigError(f"tool {fn.__name__!r}: *args and **kwargs cannot be described")
            hint = hints.get(p.name, Any)
            key = _injected_key(hint)
            if key is not None:
                self._injected[p.name] = key
                continue
            if p.kind is p.POSITIONAL_ONLY:
                self._positional.append(p.name)
            default = msgspec.NODEFAULT if p.default is p.empty else p.default
            if is_pydantic_model(hint):
                self._models[p.name] = hint
                hint = dict[str, Any]  # shape checked by pydantic when the tool runs
            fields.append((p.name, hint, default))
        try:
            parameters, self._args_type = parameters_schema(fields, arg_docs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"tool {fn.__name__!r}: a parameter type is not supported: {exc}"
            ) from None
        for pname, model in self._models.items():
            _model_property(parameters, pname, model)
        self.best_practices = _unique(best_practices)
        self.prompt_injection_builder = prompt_injection_builder
        description = description or desc
        if self.best_practices:
            practices = "\n".join(f"- {p}" for p in self.best_practices)
            description = f"{description}\n\nBest practices:\n{practices}".lstrip()
        self.spec = Tool(name=name or fn.__name__, description=description, parameters=parameters)
        self.__llmplug_tool__ = self.spec

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<tool {self.spec.name}>"

    async def run(self, call: ToolCall, injected: Mapping[str, Any] | None = None) -> ToolResult:
        """Validate the model's arguments and run the function; any failure becomes an error
        result the model can read and correct, never an exception in the caller's loop.
        ``injected`` holds values for parameters the model does not fill (by their key)."""
        try:
            raw = call.parsed_arguments()
            args = msgspec.convert(raw, self._args_type)
        except (msgspec.ValidationError, *JSON_ERRORS) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else exc
            return ToolResult(
                call,
                f"Error: invalid arguments for {self.spec.name}: {why}",
                True,
                error_type=type(exc).__name__,
            )
        kwargs = msgspec.structs.asdict(args)
        for pname, model in self._models.items():
            if isinstance(kwargs.get(pname), dict):
                try:
                    kwargs[pname] = model.model_validate(kwargs[pname])
                except ValueError as exc:  # pydantic's ValidationError is a ValueError
                    return ToolResult(
                        call,
                        f"Error: invalid arguments for {self.spec.name}: {exc}",
                        True,
                        error_type=type(exc).__name__,
                    )
        for pname, key in self._injected.items():
            if injected is not None and key in injected:
                kwargs[pname] = injected[key]
        positional = [kwargs.pop(n) for n in self._positional]
        try:
            if self.is_async:
                result: Any = await self._fn(*positional, **kwargs)
            else:
                # A blocking tool must not stall the other tool calls of the turn.
                import asyncio  # on use, not with llmplug (tests/core/test_import.py)

                result = await asyncio.to_thread(self._fn, *positional, **kwargs)
        except Exception as exc:
            return ToolResult(
                call,
                f"Error: {self.spec.name} raised {type(exc).__name__}: {exc}",
                True,
                error_type=type(exc).__name__,
            )
        try:
            with_images = tool_output(result)
        except (OSError, ValueError) as exc:
            return ToolResult(
                call,
                f"Error: {self.spec.name} returned an unusable image: {exc}",
                True,
                error_type=type(exc).__name__,
            )
        if with_images is not None:
            return ToolResult(call, with_images[0], images=tuple(with_images[1]))
        try:
            return ToolResult(call, render_value(result))
        except Exception as exc:  # a result's own __str__ or model_dump_json may fail too
            return ToolResult(
                call,
                f"Error: {self.spec.name} returned a value that cannot be shown: "
                f"{type(exc).__name__}: {exc}",
                True,
                error_type=type(exc).__name__,
            )

    #: Set by llmplug.slf's ``tool``: SimpleLLMFunc calls the builder with an empty dict and
    #: drops what it raises.
    simplellmfunc_injection = False

    def prompt_injection(self, context: Mapping[str, Any]) -> str | None:
        """The text ``prompt_injection_builder`` adds to the system prompt, if any."""
        if self.prompt_injection_builder is None:
            return None
        if self.simplellmfunc_injection:
            try:
                text = self.prompt_injection_builder({})
            except Exception:
                return None
        else:
            text = self.prompt_injection_builder(dict(context))
        return text.strip() or None if isinstance(text, str) else None


@overload
def tool(fn: Callable[P, R], /) -> ToolFunction[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    best_practices: Sequence[str] | None = None,
    prompt_injection_builder: PromptInjectionBuilder | None = None,
    too_long_to_file: bool = False,
) -> Callable[[Callable[P, R]], ToolFunction[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    best_practices: Sequence[str] | None = None,
    prompt_injection_builder: PromptInjectionBuilder | None = None,
    too_long_to_file: bool = False,
) -> ToolFunction[P, R] | Callable[[Callable[P, R]], ToolFunction[P, R]]:
    """Make a function a tool. The parameters' JSON schema comes from the signature (defaults,
    Optional, Literal, Enum, Structs, dataclasses, TypedDicts) and the docstring's Args section;
    the description from ``description`` or the docstring. Works on async and plain functions,
    with or without parentheses.

    ``best_practices`` are added to the description the model sees. ``prompt_injection_builder``
    is called on each decorated call whose toolkit holds the tool, with a context dict
    (``function_name``, ``tool_name``); the text it returns joins that call's system prompt.
    A tool may return images (``ImgPath``, ``ImgUrl``, a list, or ``(text, images)``)."""
    if too_long_to_file:
        raise ConfigError(
            "@tool(too_long_to_file=True) is not supported: shorten the result in the tool, "
            "or write it to a file yourself and return the path"
        )
    if fn is not None:
        return ToolFunction(fn, None, None)

    def wrap(f: Callable[P, R]) -> ToolFunction[P, R]:
        return ToolFunction(f, name, description, best_practices, prompt_injection_builder)

    return wrap


def _unique(items: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for item in items or ():
        text = item.strip() if isinstance(item, str) else ""
        if text and text not in out:
            out.append(text)
    return out


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

    def guidance(self, function_name: str) -> str | None:
        """What the tools' prompt injection builders add to a call's system prompt, in
        SimpleLLMFunc's block; None when they add nothing."""
        lines: list[str] = []
        for name, t in self.tools.items():
            text = t.prompt_injection({"function_name": function_name, "tool_name": name})
            if text:
                lines += [f'<tool name="{name}">', text, "</tool>"]
        return "\n".join([_GUIDANCE_START, *lines, _GUIDANCE_END]) if lines else None

    async def run_all(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run one turn's calls concurrently; results in the calls' order."""
        import asyncio

        return list(await asyncio.gather(*(self._run(c) for c in calls)))

    def description(self, name: str) -> str | None:
        t = self.tools.get(name)
        return t.spec.description if t is not None else None

    def run_one(
        self, call: ToolCall, injected: Mapping[str, Any] | None = None
    ) -> Awaitable[ToolResult]:
        """Run one of the model's calls (an unknown tool is an error result); ``injected``
        as in :meth:`ToolFunction.run`."""
        return self._run(call, injected)

    def _run(
        self, call: ToolCall, injected: Mapping[str, Any] | None = None
    ) -> Awaitable[ToolResult]:
        t = self.tools.get(call.name)
        if t is None:
            known = ", ".join(self.tools) or "none"
            return _done(
                ToolResult(
                    call,
                    f"Error: there is no tool named {call.name!r} (tools: {known})",
                    True,
                    error_type="UnknownTool",
                )
            )
        return t.run(call, injected)


def _injected_key(hint: Any) -> str | None:
    """The key of a parameter type the caller supplies (``X`` or ``X | None``), if any."""
    for tp in (hint, *typing.get_args(hint)):
        key = getattr(tp, "__llmplug_injected__", None)
        if isinstance(key, str):
            return key
    return None


def _model_property(parameters: dict[str, Any], name: str, model: Any) -> None:
    """Put a pydantic model's own schema in place of a parameter's placeholder one."""
    schema = dict(model.model_json_schema(ref_template="#/$defs/{model}"))
    defs = schema.pop("$defs", None)
    if defs:
        parameters.setdefault("$defs", {}).update(defs)
    prop = parameters["properties"][name]
    if "description" in prop:
        schema["description"] = prop["description"]
    parameters["properties"][name] = schema


async def _done(result: ToolResult) -> ToolResult:
    return result


_GUIDANCE_START = "<tool_best_practices>"
_GUIDANCE_END = "</tool_best_practices>"


def with_guidance(system: str, block: str | None) -> str:
    """``system`` with this call's tool guidance, replacing the block an earlier turn left in a
    history's system message (a builder's text may change from call to call)."""
    start = system.find(_GUIDANCE_START)
    end = system.find(_GUIDANCE_END, start)
    if start >= 0 and end >= 0:
        system = (system[:start] + system[end + len(_GUIDANCE_END) :]).strip()
    return f"{system}\n\n{block}".strip() if block else system
