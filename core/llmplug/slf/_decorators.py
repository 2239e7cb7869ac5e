"""SimpleLLMFunc's ``llm_chat``, ``llm_function`` and ``tool``, on llmplug's decorators.

``llm_chat`` yields :class:`ResponseYield` pairs (0.7.8's ``(response, history)``; they are
also 0.8.4's ``ResponseYield``), with ``return_mode`` "text" or "raw"; with
``enable_event=True`` it yields 0.8.4's event stream (``ResponseYield`` and ``EventYield``).
``llm_function`` is awaited for its value; ``.stream(...)`` (0.8.4) or ``enable_event=True``
(0.7.8) give its event stream. Everything is async, ``def`` or ``async def``, as in
SimpleLLMFunc."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from llmplug._decorators._chat import llm_chat as native_llm_chat
from llmplug._decorators._chat_plan import ChatPlan, plan_of
from llmplug._decorators._function import _REPAIR, _Runner
from llmplug._decorators._keywords import check_decorator_keywords, new_trace_id
from llmplug._decorators._tool import PromptInjectionBuilder, ToolFunction
from llmplug._decorators._tool import tool as native_tool
from llmplug._vocab._errors import ConfigError
from llmplug._vocab._types import Message

from ._prompt import system_prompt, user_text
from ._raw import OpenAIObject
from ._react import react
from .hooks.events import LLMCallEndEvent, ReactEndEvent
from .hooks.stream import EventYield, ReactOutput, ResponseYield

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = [
    "LLMChat",
    "LLMFunction",
    "async_llm_chat",
    "async_llm_function",
    "llm_chat",
    "llm_function",
    "tool",
]

P = ParamSpec("P")
R = TypeVar("R")

#: SimpleLLMFunc keywords that have no effect here (llmplug retries on its own).
_IGNORED = ("retry_on_exception",)


def _fill(doc: str, params: Any) -> str:
    """The docstring as SimpleLLMFunc fills it: ``str.format``, or as written if that fails."""
    doc = doc.strip()
    if not params:
        return doc
    try:
        return doc.format(**params)
    except Exception:  # SimpleLLMFunc logs a warning and sends the docstring as written
        return doc


def _text(response: Any) -> str:
    """The text of a chunk or a completion, as SimpleLLMFunc's text mode gives it."""
    if isinstance(response, OpenAIObject):
        choice = response.choices[0] if response.choices else None
        if choice is None:
            return ""
        part = getattr(choice, "delta", None) or getattr(choice, "message", None)
        return (part.content or "") if part is not None else ""
    return "" if response is None else str(response)


def _task_prompt(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    given = {k: v for k, v in kwargs.items() if k not in ("_template_params", "_llm_params")}
    try:
        bound = sig.bind_partial(*args, **given)
    except TypeError:
        return ""
    return json.dumps(bound.arguments, default=str, ensure_ascii=False)


def _tools(toolkit: Iterable[Any] | None) -> list[Any] | None:
    if toolkit is None:
        return None
    out = []
    for t in toolkit:
        as_tool = getattr(t, "as_tool_function", None)  # llmplug.slf.tool.Tool
        if callable(as_tool) and not isinstance(t, ToolFunction):
            t = as_tool()
        if isinstance(t, ToolFunction):
            t.simplellmfunc_injection = True
        out.append(t)
    return out


class ChatRun:
    """One call of an ``llm_chat`` agent: an async generator of its pairs, or of 0.8.4's event
    stream once ``events_only``, ``filter_events``, ``responses_only`` or
    ``with_event_observer`` is given it before it starts (0.8.4 code that hands the stream to
    those wants its events)."""

    def __init__(self, start: Callable[[bool], AsyncGenerator[Any, None]]) -> None:
        self._start = start
        self._events = False
        self._gen: AsyncGenerator[Any, None] | None = None

    def _slf_want_events(self) -> None:
        if self._gen is None:
            self._events = True

    def _generator(self) -> AsyncGenerator[Any, None]:
        if self._gen is None:
            self._gen = self._start(self._events)
        return self._gen

    def __aiter__(self) -> ChatRun:
        return self

    async def __anext__(self) -> Any:
        return await self._generator().__anext__()

    async def asend(self, value: Any) -> Any:
        return await self._generator().asend(value)

    async def athrow(self, *args: Any) -> Any:
        return await self._generator().athrow(*args)

    async def aclose(self) -> None:
        if self._gen is not None:
            await self._gen.aclose()


class LLMChat:
    """What ``llm_chat`` makes: calling it gives an async generator (see the module)."""

    __qualname__: str

    def __init__(
        self,
        fn: Callable[..., Any],
        plan: ChatPlan,
        *,
        return_mode: Literal["text", "raw"],
        enable_event: bool,
        max_tool_calls: int | None,
    ) -> None:
        functools.update_wrapper(self, fn)
        self._plan = plan
        self._doc = fn.__doc__ or ""  # as written: SimpleLLMFunc does not dedent it
        self._sig = inspect.signature(fn)
        self._return_mode = return_mode
        self._enable_event = enable_event
        self._max_tool_calls = max_tool_calls

    def __call__(self, *args: Any, **kwargs: Any) -> ChatRun:
        return ChatRun(lambda events: self._run(args, kwargs, events or self._enable_event))

    async def _run(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], enable_event: bool
    ) -> AsyncGenerator[Any, None]:
        plan = self._plan
        prompt = _task_prompt(self._sig, args, kwargs)
        messages, params, _ = await plan.start(args, dict(kwargs), False)
        self._as_simplellmfunc(messages, args, kwargs)
        stream = react(
            plan.llm,
            messages,
            plan.toolkit,
            params,
            stream=plan.stream,
            max_tool_calls=self._max_tool_calls,
            func_name=plan.fn.__name__,
            user_task_prompt=prompt,
        )
        held: ResponseYield | None = None
        async with aclosing(stream):
            async for out in stream:
                if enable_event:
                    yield out
                elif isinstance(out, ResponseYield):
                    if plan.stream:
                        yield self._pair(out.response, out.messages)
                    else:
                        held = out  # 0.7.8 gives a whole reply with the history that holds it
                elif held is not None and isinstance(out.event, LLMCallEndEvent):
                    reply: dict[str, Any] = {"role": "assistant", "content": out.event.content}
                    if out.event.tool_calls:
                        reply["tool_calls"] = out.event.tool_calls
                    yield self._pair(held.response, [*held.messages, reply])
                    held = None
                elif isinstance(out.event, ReactEndEvent) and self._return_mode == "text":
                    yield ResponseYield("", out.event.final_messages)

    def _as_simplellmfunc(
        self, messages: list[Message], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """SimpleLLMFunc's system prompt and user message in place of llmplug's (the history
        in between is left as given)."""
        given = {k: v for k, v in kwargs.items() if k not in ("_template_params", "_llm_params")}
        try:
            arguments = self._sig.bind(*args, **given).arguments
        except TypeError:
            return
        names = list(self._sig.parameters)
        history_name = next((n for n in names if n in ("history", "chat_history")), None)
        history = arguments.get(history_name) if history_name else None
        if messages and messages[0].role == "system":
            if isinstance(history, list) and history and history[0].get("role") == "system":
                base = messages[0].text
            else:
                base = _fill(self._doc, kwargs.get("_template_params"))
            messages[0] = Message(role="system", content=system_prompt(base, self._plan.toolkit))
        last = messages[-1] if messages else None
        if last is not None and last.role == "user" and isinstance(last.content, str):
            message_name = next((n for n in names if n != history_name), None)
            if not isinstance(arguments.get(message_name or ""), (str, int, float, bool)):
                return  # a UserChatMessage or a message dict is sent as it is, as there
            skip = frozenset(n for n in (history_name, "_template_params") if n)
            messages[-1] = Message(role="user", content=user_text(arguments, skip))

    def _pair(self, response: Any, messages: list[dict[str, Any]]) -> ResponseYield:
        if self._return_mode == "raw":
            return ResponseYield(response, messages)
        return ResponseYield(_text(response), messages)

    def __repr__(self) -> str:
        return f"<llmplug.slf llm_chat {self.__qualname__}>"


def llm_chat(
    llm_interface: LLMInterface | ModelGroup,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    stream: bool = False,
    return_mode: Literal["text", "raw"] = "text",
    enable_event: bool = False,
    strict_signature: bool = False,
    self_reference: object = None,
    self_reference_key: str | None = None,
    **llm_kwargs: Any,
) -> Callable[[Callable[..., Any]], LLMChat]:
    """SimpleLLMFunc's ``llm_chat`` (0.7.8's keywords; 0.8.4 has a subset of them)."""
    if return_mode not in ("text", "raw"):
        raise ConfigError(f"return_mode must be 'text' or 'raw', got {return_mode!r}")
    for name in _IGNORED:
        llm_kwargs.pop(name, None)
    native = native_llm_chat(
        llm_interface,
        _tools(toolkit),
        None,  # the cap is SimpleLLMFunc's (a last turn without tools), applied in react
        stream,
        strict_signature=strict_signature,
        self_reference=self_reference,
        self_reference_key=self_reference_key,
        compaction=False,  # SimpleLLMFunc sends the history as it is
        **llm_kwargs,
    )

    def decorate(fn: Callable[..., Any]) -> LLMChat:
        return LLMChat(
            fn,
            plan_of(native(fn)),
            return_mode=return_mode,
            enable_event=enable_event,
            max_tool_calls=max_tool_calls,
        )

    return decorate


async_llm_chat = llm_chat


class LLMFunction:
    """What ``llm_function`` makes: ``await f(...)`` gives the value; ``f.stream(...)`` the
    event stream, whose last response is the value (``enable_event=True``: calling gives the
    stream)."""

    __qualname__: str

    def __init__(self, fn: Callable[..., Any], runner: _Runner, *, enable_event: bool) -> None:
        functools.update_wrapper(self, fn)
        self._runner = runner
        self._sig = inspect.signature(fn)
        self._enable_event = enable_event
        mark = getattr(inspect, "markcoroutinefunction", None)  # Python 3.12+
        if not enable_event and mark is not None:
            mark(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._enable_event:
            return self.stream(*args, **kwargs)
        return self._runner(args, kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[ReactOutput, None]:
        runner = self._runner
        prompt = _task_prompt(self._sig, args, kwargs)
        messages, params = runner.messages(args, dict(kwargs))
        params.setdefault("trace_id", new_trace_id(runner.name))
        events = react(
            runner.llm,
            messages,
            runner.toolkit,
            params,
            stream=False,
            max_tool_calls=runner.max_tool_calls,
            func_name=runner.name,
            user_task_prompt=prompt,
        )
        last: ResponseYield | None = None
        end: ReactEndEvent | None = None
        async with aclosing(events):
            async for out in events:
                if isinstance(out, ResponseYield):
                    last = out  # the value is given once decoded, as SimpleLLMFunc does
                    continue
                if isinstance(out, EventYield) and isinstance(out.event, ReactEndEvent):
                    end = out.event
                yield out
        if end is None or last is None:
            return
        try:
            value = runner.out.decode(end.final_response)
        except ValueError as exc:
            messages.append(Message(role="user", content=_REPAIR.format(error=exc)))
            repaired = await runner.complete(messages, params)
            value = runner.out.decode(repaired.text)
        yield ResponseYield(value, last.messages)

    def __repr__(self) -> str:
        return f"<llmplug.slf llm_function {self.__qualname__}>"


def llm_function(
    llm_interface: LLMInterface | ModelGroup,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    system_prompt_template: str | None = None,
    user_prompt_template: str | None = None,
    enable_event: bool = False,
    **llm_kwargs: Any,
) -> Callable[[Callable[..., Any]], LLMFunction]:
    """SimpleLLMFunc's ``llm_function``."""
    for name in _IGNORED:
        llm_kwargs.pop(name, None)
    check_decorator_keywords("llm_function", llm_kwargs)

    def decorate(fn: Callable[..., Any]) -> LLMFunction:
        runner = _Runner(
            fn,
            llm_interface,
            _tools(toolkit),
            max_tool_calls,
            system_prompt_template,
            user_prompt_template,
            llm_kwargs,
        )
        return LLMFunction(fn, runner, enable_event=enable_event)

    return decorate


async_llm_function = llm_function


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
    """SimpleLLMFunc's ``tool``: llmplug's, with SimpleLLMFunc's ``prompt_injection_builder``
    contract (called with an empty dict; what it raises is dropped)."""
    if fn is not None:
        made = native_tool(fn)
        made.simplellmfunc_injection = True
        return made
    wrap = native_tool(
        name=name,
        description=description,
        best_practices=best_practices,
        prompt_injection_builder=prompt_injection_builder,
        too_long_to_file=too_long_to_file,
    )

    def mark(f: Callable[P, R]) -> ToolFunction[P, R]:
        made = wrap(f)
        made.simplellmfunc_injection = True
        return made

    return mark
