"""``@llm_chat``: a chat agent from a function's docstring, with tools, streaming and
automatic compaction of long histories."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
)
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, overload

import msgspec

from ._compact import Compaction, maybe_compact
from ._errors import ConfigError
from ._events import ChatDone, ChatEvent
from ._prompt import fill_template, format_arguments, render_value, split_call_options
from ._tool import Toolkit
from ._turns import TurnsDone, run_turns
from ._types import Message, StreamEvent

if TYPE_CHECKING:
    from ._interface import LLMInterface

__all__ = ["llm_chat"]

_HISTORY_NAMES = ("history", "chat_history")

ChatStream = AsyncGenerator[StreamEvent | ChatEvent, None]
BlockingChatStream = Generator[StreamEvent | ChatEvent, None, None]


class ChatDecorator(Protocol):
    """What ``llm_chat(...)`` returns: ``async def`` functions become async generators, plain
    ``def`` functions blocking generators."""

    @overload
    def __call__(
        self, fn: Callable[..., Awaitable[Any] | AsyncIterator[Any]]
    ) -> Callable[..., ChatStream]: ...

    @overload
    def __call__(self, fn: Callable[..., None]) -> Callable[..., BlockingChatStream]: ...


def llm_chat(
    llm_interface: LLMInterface,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    stream: bool = False,
    compaction: Compaction | bool | None = True,
    **llm_kwargs: Any,
) -> ChatDecorator:
    """Make a function a chat agent. Its docstring is the system prompt; its first parameter is
    the user's message; a ``history`` (or ``chat_history``) parameter takes OpenAI-style message
    dicts; other parameters are added to the user message as ``name: value`` lines.

    Calling it returns an async iterator of events: ``TextDelta`` / ``ReasoningDelta`` as they
    stream (``stream=True``) or ``AssistantReply`` per model turn, ``ToolCallEvent`` and
    ``ToolResultEvent`` around tool runs, ``CompactionEvent`` when old turns were summarized,
    and last ``ChatDone`` with the reply, usage and the updated history (the history you passed
    in is not modified). ``compaction=False`` turns compaction off; a :class:`Compaction` tunes
    it.

    On a plain ``def`` the same events come from a blocking generator (``for event in ...``),
    each call on an event loop of its own; it cannot be used inside a running event loop."""
    kit = Toolkit(toolkit)
    config = Compaction() if compaction is True or compaction is None else compaction or None

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        history_name = next((n for n in names if n in _HISTORY_NAMES), None)
        message_name = next((n for n in names if n != history_name), None)
        if message_name is None:
            raise ConfigError(f"@llm_chat {fn.__name__!r} needs a parameter for the user's message")
        system = inspect.cleandoc(fn.__doc__ or "")

        @functools.wraps(fn)
        async def run(*args: Any, **kwargs: Any) -> ChatStream:
            template_params, call_params = split_call_options(kwargs)
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            messages = _history(bound.arguments.get(history_name) if history_name else None)
            prompt = fill_template(system, template_params)
            if prompt and not (messages and messages[0].role == "system"):
                messages.insert(0, Message(role="system", content=prompt))
            skip = frozenset(n for n in (history_name, message_name) if n)
            extra = format_arguments(bound, skip)
            text = render_value(bound.arguments[message_name])
            messages.append(Message(role="user", content=f"{text}\n\n{extra}" if extra else text))
            if config is not None:
                event = await maybe_compact(llm_interface, messages, kit.specs, config)
                if event is not None:
                    yield event
            params = {**llm_kwargs, **call_params}
            turns = run_turns(
                llm_interface, messages, kit, params, stream=stream, max_tool_calls=max_tool_calls
            )
            # Closed with us, at once: a consumer that stops early must free the stream and
            # its key now, not whenever the garbage collector gets to it.
            async with aclosing(turns):
                async for ev in turns:
                    if isinstance(ev, TurnsDone):
                        yield ChatDone(
                            reply=ev.completion.text,
                            usage=ev.usage,
                            history=[msgspec.to_builtins(m) for m in messages],
                            completion=ev.completion,
                        )
                        return
                    yield ev

        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return run
        return _blocking(fn, run, llm_interface)

    return decorate


def _blocking(
    fn: Callable[..., Any], run: Callable[..., ChatStream], llm: LLMInterface
) -> Callable[..., BlockingChatStream]:
    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> BlockingChatStream:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _drive(run(*args, **kwargs), llm)
        raise RuntimeError(
            f"{fn.__name__}() is a blocking @llm_chat called inside a running event loop; "
            "define it with `async def` and iterate it with `async for`"
        )

    return run_sync


def _drive(events: ChatStream, llm: LLMInterface) -> BlockingChatStream:
    """Run ``events`` on an event loop that lives as long as this generator. Stopping early
    closes the stream (its key is freed at once), and the client made on this loop is closed
    with it, so no socket outlives the loop that opened it."""
    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    event = runner.run(_next(events))
                except StopAsyncIteration:
                    return
                yield event
        finally:
            try:
                runner.run(_close(events))
            finally:
                runner.run(llm.aclose())


async def _next(events: ChatStream) -> StreamEvent | ChatEvent:
    return await anext(events)


async def _close(events: ChatStream) -> None:
    await events.aclose()


def _history(history: Any) -> list[Message]:
    if history is None:
        return []
    if not isinstance(history, list):
        raise ConfigError(f"history must be a list of message dicts, got {type(history).__name__}")
    out: list[Message] = []
    for i, m in enumerate(history):
        if isinstance(m, Message):
            out.append(m)
            continue
        if not isinstance(m, Mapping):
            raise ConfigError(f"history[{i}] must be a message dict, got {type(m).__name__}")
        try:
            out.append(msgspec.convert(m, Message))
        except msgspec.ValidationError as exc:
            raise ConfigError(f"invalid history[{i}]: {exc}") from None
    return out
