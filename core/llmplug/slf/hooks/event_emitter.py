"""``ToolEventEmitter``: a tool reports its own events into the stream of the call that runs it.

A tool takes it as a parameter annotated ``ToolEventEmitter`` (default ``None``); llmplug leaves
that parameter out of the schema the model sees and passes the call's emitter when the stream
has events (``enable_event=True``, ``.stream()``), else leaves the default."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from .events import CustomEvent, ReActEvent, ReActEventType
from .stream import EventOrigin, EventYield

__all__ = ["NoOpEventEmitter", "ToolEventEmitter"]


@dataclass
class ToolEventEmitter:
    #: Marks this type as one llmplug passes to a tool, never asks the model for.
    __llmplug_injected__: ClassVar[str] = "event_emitter"

    _queue: asyncio.Queue[EventYield] = field(default_factory=asyncio.Queue, repr=False)
    _trace_id: str = ""
    _func_name: str = ""
    _iteration: int = 0
    _tool_name: str = ""
    _tool_call_id: str = ""

    async def emit(self, event_name: str, data: Any = None) -> None:
        await self.emit_event(
            CustomEvent(
                event_type=ReActEventType.CUSTOM_EVENT,
                timestamp=datetime.now(UTC),
                trace_id=self._trace_id,
                func_name=self._func_name,
                iteration=self._iteration,
                event_name=event_name,
                data=data,
                tool_name=self._tool_name or None,
                tool_call_id=self._tool_call_id or None,
            )
        )

    async def emit_event(
        self,
        event: ReActEvent,
        *,
        origin: EventOrigin | None = None,
        origin_overrides: dict[str, Any] | None = None,
    ) -> None:
        if origin is None:
            origin = EventOrigin(
                session_id=self._trace_id,
                agent_call_id=f"agent_{self._trace_id}",
                event_seq=0,
                tool_name=self._tool_name or None,
                tool_call_id=self._tool_call_id or None,
            )
            for key, value in (origin_overrides or {}).items():
                setattr(origin, key, value)
        await self._queue.put(EventYield(event=event, origin=origin))

    async def emit_batch(self, events: list[tuple[str, Any]]) -> None:
        for event_name, data in events:
            await self.emit(event_name, data)

    async def get_events(self) -> list[EventYield]:
        out: list[EventYield] = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def has_events(self) -> bool:
        return not self._queue.empty()


@dataclass
class NoOpEventEmitter:
    """An emitter that drops everything (for tools called outside an event stream)."""

    async def emit(self, event_name: str, data: Any = None) -> None:
        return None

    async def emit_batch(self, events: list[tuple[str, Any]]) -> None:
        return None

    async def emit_event(self, event: ReActEvent, **_: Any) -> None:
        return None

    async def get_events(self) -> list[Any]:
        return []

    def has_events(self) -> bool:
        return False
