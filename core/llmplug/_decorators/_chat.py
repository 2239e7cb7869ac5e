"""``@llm_chat``: a chat agent from a function's docstring, with tools, streaming and
automatic compaction of long histories."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, overload

import msgspec

from llmplug._vocab._errors import ConfigError
from llmplug._vocab._types import Message, StreamEvent

from ._chat_agent import (
    BlockingChatAgent,
    ChatAgent,
    ChatPair,
    ChatPairs,
    HistoryList,
    ReturnMode,
    check_strict_signature,
)
from ._chat_plan import ChatPlan, register
from ._compact import Compaction, maybe_compact
from ._events import ChatDone, ChatEvent, CompactionEvent
from ._keywords import (
    check_call_keywords,
    check_chat_options,
    check_decorator_keywords,
    new_trace_id,
)
from ._multimodal import image_arguments, message_content, with_images
from ._prompt import fill_template, format_arguments, split_call_options
from ._tool import Toolkit, with_guidance
from ._turns import TurnsDone, run_turns

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["HistoryList", "async_llm_chat", "llm_chat"]

_HISTORY_NAMES = ("history", "chat_history")

ChatStream = AsyncGenerator[StreamEvent | ChatEvent, None]


class ChatDecorator(Protocol):
    """What ``llm_chat(...)`` returns: an ``async def`` becomes a :class:`ChatAgent` (async
    iterators), a plain ``def`` a :class:`BlockingChatAgent` (blocking generators)."""

    @overload
    def __call__(self, fn: Callable[..., Awaitable[Any] | AsyncIterator[Any]]) -> ChatAgent: ...

    @overload
    def __call__(self, fn: Callable[..., None]) -> BlockingChatAgent: ...


def llm_chat(
    llm_interface: LLMInterface | ModelGroup,
    toolkit: Iterable[Any] | None = None,
    max_tool_calls: int | None = None,
    stream: bool = False,
    return_mode: ReturnMode = "text",
    enable_event: bool = False,
    strict_signature: bool = False,
    self_reference: object = None,
    self_reference_key: str | None = None,
    compaction: Compaction | bool | None = True,
    **llm_kwargs: Any,
) -> ChatDecorator:
    """Make a function a chat agent. Its docstring is the system prompt; its first parameter
    (other than the history) is the user's message: a str, a :class:`UserChatMessage` (text and
    images) or images; a ``history`` (or ``chat_history``) parameter takes OpenAI-style message
    dicts; other parameters are added to the user message as ``name: value`` lines.

    ``agent(message, history)`` yields SimpleLLMFunc's ``(response, updated_history)`` pairs
    (see :class:`ChatAgent`; ``return_mode`` "text" or "raw"); ``agent.events(...)`` yields
    typed events: ``TextDelta`` / ``ReasoningDelta`` as they stream (``stream=True``) or
    ``AssistantReply`` per model turn, ``ToolCallEvent`` and ``ToolResultEvent`` around tool
    runs, ``CompactionEvent`` when old turns were summarized, and last ``ChatDone`` with the
    reply, usage and the updated history. The history you pass in is never modified.
    ``compaction=False`` turns compaction off; a :class:`Compaction` tunes it.

    ``strict_signature=True`` requires SimpleLLMFunc's ``(history, message: str, ...)``.
    ``enable_event=True``, ``self_reference`` and ``self_reference_key`` raise
    :class:`ConfigError` (see docs/migrating-from-simplellmfunc.md), as does any keyword that
    is not a provider parameter; ``trace_id=`` tags the log events.

    On a plain ``def`` the same pairs and events come from blocking generators (``for response,
    history in agent(...)``), each call on an event loop of its own; such an agent cannot be
    used inside a running event loop."""
    if return_mode not in ("text", "raw"):
        raise ConfigError(f"return_mode must be 'text' or 'raw', got {return_mode!r}")
    check_chat_options(enable_event, self_reference, self_reference_key)
    check_decorator_keywords("llm_chat", llm_kwargs)
    kit = Toolkit(toolkit)
    config = Compaction() if compaction is True or compaction is None else compaction or None

    def decorate(fn: Callable[..., Any]) -> ChatAgent | BlockingChatAgent:
        if strict_signature:
            check_strict_signature(fn)
        sig = inspect.signature(fn)
        names = list(sig.parameters)
        history_name = next((n for n in names if n in _HISTORY_NAMES), None)
        message_name = next((n for n in names if n != history_name), None)
        if message_name is None:
            raise ConfigError(f"@llm_chat {fn.__name__!r} needs a parameter for the user's message")
        system = inspect.cleandoc(fn.__doc__ or "")
        skip = frozenset(n for n in (history_name, message_name, "_template_params") if n)

        async def start(
            args: tuple[Any, ...], kwargs: dict[str, Any], guidance_block: bool = True
        ) -> tuple[list[Message], dict[str, Any], CompactionEvent | None]:
            template_params, call_params = split_call_options(kwargs)
            check_call_keywords(fn.__name__, kwargs)
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            messages = _history(bound.arguments.get(history_name) if history_name else None)
            prompt = fill_template(system, template_params)
            if prompt and not (messages and messages[0].role == "system"):
                messages.insert(0, Message(role="system", content=prompt))
            # llmplug.slf writes SimpleLLMFunc's own block (and calls the builders) itself
            guidance = kit.guidance(fn.__name__) if guidance_block else None
            if guidance and messages and messages[0].role == "system":
                messages[0] = Message(
                    role="system", content=with_guidance(messages[0].text, guidance)
                )
            elif guidance:
                messages.insert(0, Message(role="system", content=guidance))
            images = image_arguments(bound, skip)
            extra = format_arguments(bound, skip | images)
            content = message_content(bound.arguments[message_name], extra)
            messages.append(Message(role="user", content=with_images(content, bound, images)))
            event = None
            if config is not None:
                event = await maybe_compact(llm_interface, messages, kit.specs, config)
            params = {**llm_kwargs, **call_params}
            params.setdefault("trace_id", new_trace_id(fn.__name__))
            return messages, params, event

        async def events(*args: Any, **kwargs: Any) -> ChatStream:
            messages, params, event = await start(args, kwargs)
            if event is not None:
                yield event
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

        async def pairs(*args: Any, **kwargs: Any) -> AsyncGenerator[ChatPair, None]:
            messages, params, _ = await start(args, kwargs)
            view = ChatPairs(messages, stream=stream, return_mode=return_mode)
            turns = run_turns(
                llm_interface, messages, kit, params, stream=stream, max_tool_calls=max_tool_calls
            )
            async with aclosing(turns):
                async for ev in turns:
                    for pair in view.feed(ev):
                        yield pair

        agent = (
            ChatAgent(fn, events, pairs)
            if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
            else BlockingChatAgent(fn, events, pairs, llm_interface)
        )
        register(agent, ChatPlan(fn, start, llm_interface, kit, stream, max_tool_calls))
        return agent

    return decorate  # type: ignore[return-value]


async_llm_chat = llm_chat
"""SimpleLLMFunc's name: every llmplug decorator is async-native."""


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
