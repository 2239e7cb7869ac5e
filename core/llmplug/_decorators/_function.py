"""``@llm_function``: a typed Python function whose body is an LLM call."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, TypeVar

from llmplug._vocab._classify import kind_of
from llmplug._vocab._errors import APIStatusError, LLMError
from llmplug._vocab._types import Completion, Message

from ._hints import type_hints
from ._keywords import (
    check_call_keywords,
    check_decorator_keywords,
    check_function_options,
    new_trace_id,
)
from ._multimodal import image_arguments, with_images
from ._prompt import fill_template, format_arguments, split_call_options
from ._schema import OutputType
from ._tool import Toolkit, with_guidance
from ._turns import TurnsDone, run_turns
from ._type_text import parameters_description, return_type_description

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["OutputValidationError", "async_llm_function", "llm_function"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SYSTEM_PROMPT = "{function_description}\n\n{return_instruction}"
DEFAULT_USER_PROMPT = "{parameters}"
_REPAIR = (
    "Your reply could not be used: {error}\n"
    "Reply again with only the corrected JSON value, nothing else."
)


class OutputValidationError(LLMError):
    """The model's reply did not match the return type, even after one repair attempt.
    ``raw`` is the last reply's text."""

    def __init__(self, message: str, *, raw: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw = raw


def _rejects_schema(err: LLMError) -> bool:
    # As the wire classified it: each provider says "no typed output" in its own words.
    return kind_of(err) == "schema_unsupported"


class _Runner:
    def __init__(
        self,
        fn: Callable[..., Any],
        llm: LLMInterface | ModelGroup,
        toolkit: Iterable[Any] | None,
        max_tool_calls: int | None,
        system_prompt_template: str | None,
        user_prompt_template: str | None,
        llm_kwargs: dict[str, Any],
    ) -> None:
        self.llm = llm
        self.name = fn.__name__
        self.sig = inspect.signature(fn)
        hints = type_hints(fn)
        self.out = OutputType(hints.get("return", str))
        self.hints = hints
        self.doc = inspect.cleandoc(fn.__doc__ or "")
        if not self.doc:
            raise TypeError(f"@llm_function {fn.__name__!r} needs a docstring: it is the task")
        self.toolkit = Toolkit(toolkit)
        self.max_tool_calls = max_tool_calls
        self.system_template = system_prompt_template or DEFAULT_SYSTEM_PROMPT
        self.user_template = user_prompt_template or DEFAULT_USER_PROMPT
        self.llm_kwargs = llm_kwargs

    def messages(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[Message], dict[str, Any]]:
        template_params, call_params = split_call_options(kwargs)
        check_call_keywords(self.name, kwargs)
        bound = self.sig.bind(*args, **kwargs)
        bound.apply_defaults()
        task = fill_template(self.doc, template_params)
        if self.out.schema is not None and self.llm.json_schema_unsupported:
            returns = self.out.describe()
        elif self.out.is_text:
            returns = "Reply with the result only."
        else:
            returns = ""
        system = fill_template(
            self.system_template,
            {
                "function_description": task,
                "parameters_description": parameters_description(self.hints),
                "return_type_description": return_type_description(
                    self.out, self.hints.get("return", str)
                ),
                # llmplug's own default template: what to reply with, for how it decodes
                "return_instruction": returns,
            },
        ).strip()
        system = with_guidance(system, self.toolkit.guidance(self.name))
        images = image_arguments(bound)
        user = fill_template(self.user_template, {"parameters": format_arguments(bound, images)})
        params = {**self.llm_kwargs, **call_params}
        if self.out.schema is not None and not self.llm.json_schema_unsupported:
            params.setdefault("response_format", self.out.response_format())
        return [
            Message(role="system", content=system),
            Message(role="user", content=with_images(user, bound, images)),
        ], params

    async def complete(self, messages: list[Message], params: dict[str, Any]) -> Completion:
        turns = run_turns(
            self.llm,
            messages,
            self.toolkit,
            params,
            stream=False,
            max_tool_calls=self.max_tool_calls,
        )
        async with aclosing(turns):
            async for ev in turns:
                if isinstance(ev, TurnsDone):
                    return ev.completion
        raise AssertionError("run_turns ends with TurnsDone")

    async def __call__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        trace_id = new_trace_id(self.name)
        messages, params = self.messages(args, dict(kwargs))
        params.setdefault("trace_id", trace_id)
        try:
            completion = await self.complete(messages, params)
        except APIStatusError as exc:
            if "response_format" not in params or not _rejects_schema(exc):
                raise
            # This provider cannot do json_schema: ask in the prompt, now and from now on.
            self.llm.json_schema_unsupported = True
            messages, params = self.messages(args, dict(kwargs))
            params.setdefault("trace_id", trace_id)
            completion = await self.complete(messages, params)
        try:
            return self.out.decode(completion.text)
        except ValueError as first:
            messages.append(Message(role="user", content=_REPAIR.format(error=first)))
            repaired = await self.complete(messages, params)
            try:
                return self.out.decode(repaired.text)
            except ValueError as second:
                raise OutputValidationError(
                    f"the reply does not match {self.out.name}: {second}",
                    raw=repaired.text,
                    provider=self.llm.provider_id,
                    model=self.llm.model_name,
                ) from None


def llm_function(
    llm_interface: LLMInterface | ModelGroup,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    system_prompt_template: str | None = None,
    user_prompt_template: str | None = None,
    enable_event: bool = False,
    **llm_kwargs: Any,
) -> Callable[[F], F]:
    """Make a typed function an LLM call: the docstring is the task (``{placeholders}`` filled
    from ``_template_params=``), the arguments go in the user message, and the reply is decoded
    into the return type (structured output for anything but ``str``).

    ``llm_kwargs`` (temperature, max_tokens, reasoning_effort, ...) go to the provider, over its
    ``api_params`` and under ``_llm_params=`` given at call time. Works on ``async def`` (await
    it) and plain ``def`` (a blocking call, not allowed inside a running event loop).

    ``trace_id=`` tags the call's log events (else each call gets its own). SimpleLLMFunc's
    keywords that llmplug does not honour (``enable_event=True``, ``return_mode``,
    ``self_reference``, ...) raise :class:`ConfigError` here, never reach the provider."""
    check_function_options(enable_event)
    check_decorator_keywords("llm_function", llm_kwargs)

    def decorate(fn: F) -> F:
        runner = _Runner(
            fn,
            llm_interface,
            toolkit,
            max_tool_calls,
            system_prompt_template,
            user_prompt_template,
            llm_kwargs,
        )
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await runner(args, kwargs)

            return typing.cast(F, run_async)

        @functools.wraps(fn)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            import asyncio  # on use, not with llmplug (tests/core/test_import.py)

            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError(
                    f"{fn.__name__}() is a blocking @llm_function called inside a running event "
                    "loop; define it with `async def` and await it"
                )
            return asyncio.run(_sync_call(runner, args, kwargs))

        return typing.cast(F, run_sync)

    return decorate


async def _sync_call(runner: _Runner, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return await runner(args, kwargs)
    finally:
        # The loop ends with this call: close the client made for it so no socket outlives it.
        await runner.llm.aclose()


async_llm_function = llm_function
"""SimpleLLMFunc's name: an ``async def`` decorated with ``llm_function`` is awaited."""
