"""SimpleLLMFunc's event stream items (``SimpleLLMFunc.hooks.stream``).

:class:`ResponseYield` is a ``(response, messages)`` pair (a tuple) that also has 0.8.4's
``.response``, ``.messages`` and ``.type``: code written for 0.7.8 unpacks it
(``async for response, history in agent(...)``), code written for 0.8.4 reads its fields."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, TypeGuard, Union

from .events import ReActEvent, ReActEventType

__all__ = [
    "EventOrigin",
    "EventYield",
    "ReactOutput",
    "ResponseYield",
    "events_only",
    "filter_events",
    "is_event_yield",
    "is_response_yield",
    "responses_only",
    "with_event_observer",
]


class ResponseYield(tuple[Any, list[dict[str, Any]]]):
    """A response (text, or the OpenAI SDK's chunk / completion shape) and the messages it
    was made from."""

    __slots__ = ()
    type: ClassVar[Literal["response"]] = "response"

    def __new__(
        cls,
        response: Any = None,
        messages: list[dict[str, Any]] | None = None,
        type: Literal["response"] = "response",
    ) -> ResponseYield:
        return super().__new__(cls, (response, messages if messages is not None else []))

    @property
    def response(self) -> Any:
        return self[0]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self[1]

    def __repr__(self) -> str:
        return f"ResponseYield(response={self[0]!r}, messages={self[1]!r}, type='response')"


@dataclass
class EventOrigin:
    """Where an event comes from (SimpleLLMFunc's fork fields stay at their defaults)."""

    session_id: str
    agent_call_id: str
    event_seq: int
    parent_agent_call_id: str | None = None
    fork_id: str | None = None
    fork_depth: int = 0
    fork_seq: int | None = None
    selfref_instance_id: str | None = None
    source_memory_key: str | None = None
    memory_key: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _default_origin() -> EventOrigin:
    return EventOrigin(session_id="legacy", agent_call_id="legacy", event_seq=0)


@dataclass
class EventYield:
    event: ReActEvent
    origin: EventOrigin = field(default_factory=_default_origin)
    type: Literal["event"] = "event"


ReactOutput = Union[ResponseYield, EventYield]  # noqa: UP007 - a runtime alias, as SimpleLLMFunc


def is_response_yield(output: object) -> TypeGuard[ResponseYield]:
    return getattr(output, "type", None) == "response"


def is_event_yield(output: object) -> TypeGuard[EventYield]:
    return getattr(output, "type", None) == "event"


def _want_events(generator: object) -> None:
    """Ask an ``llmplug.slf`` agent's stream, not yet started, for 0.8.4's events."""
    want = getattr(generator, "_slf_want_events", None)
    if callable(want):
        want()


async def responses_only(
    generator: AsyncIterable[Any],
) -> AsyncGenerator[tuple[Any, list[dict[str, Any]]], None]:
    _want_events(generator)  # 0.8.4's responses: the raw chunks and completions
    async for output in generator:
        if is_response_yield(output):
            yield output.response, output.messages


async def events_only(generator: AsyncIterable[Any]) -> AsyncGenerator[ReActEvent, None]:
    _want_events(generator)
    async for output in generator:
        if is_event_yield(output):
            yield output.event


async def filter_events(
    generator: AsyncIterable[Any], event_types: set[ReActEventType]
) -> AsyncGenerator[ReActEvent, None]:
    _want_events(generator)
    async for output in generator:
        if is_event_yield(output) and output.event.event_type in event_types:
            yield output.event


def with_event_observer(
    observer: Callable[[ReActEvent], Awaitable[None]],
) -> Callable[[Callable[..., AsyncIterable[Any]]], Callable[..., AsyncGenerator[Any, None]]]:
    """Call ``observer`` on every event of the wrapped stream; its exceptions are swallowed,
    as SimpleLLMFunc does (an observer must not break the stream)."""

    def decorator(
        generator_func: Callable[..., AsyncIterable[Any]],
    ) -> Callable[..., AsyncGenerator[Any, None]]:
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            stream = generator_func(*args, **kwargs)
            _want_events(stream)
            async for output in stream:
                if is_event_yield(output):
                    # SimpleLLMFunc's contract: an observer cannot fail the call
                    with contextlib.suppress(Exception):
                        await observer(output.event)
                yield output

        return wrapper

    return decorator
