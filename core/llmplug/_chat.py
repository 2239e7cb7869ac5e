"""``@llm_chat``: a chat agent from a function's docstring, with tools, streaming and
automatic compaction of long histories."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

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


def llm_chat(
    llm_interface: LLMInterface,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    stream: bool = False,
    compaction: Compaction | bool | None = True,
    **llm_kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., ChatStream]]:
    """Make a function a chat agent. Its docstring is the system prompt; its first parameter is
    the user's message; a ``history`` (or ``chat_history``) parameter takes OpenAI-style message
    dicts; other parameters are added to the user message as ``name: value`` lines.

    Calling it returns an async iterator of events: ``TextDelta`` / ``ReasoningDelta`` as they
    stream (``stream=True``) or ``AssistantReply`` per model turn, ``ToolCallEvent`` and
    ``ToolResultEvent`` around tool runs, ``CompactionEvent`` when old turns were summarized,
    and last ``ChatDone`` with the reply, usage and the updated history (the history you passed
    in is not modified). ``compaction=False`` turns compaction off; a :class:`Compaction` tunes
    it."""
    kit = Toolkit(toolkit)
    config = Compaction() if compaction is True or compaction is None else compaction or None

    def decorate(fn: Callable[..., Any]) -> Callable[..., ChatStream]:
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

        return run

    return decorate


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
