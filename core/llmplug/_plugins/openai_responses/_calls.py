"""Function calls of a Responses stream, put together from events that may come in any order."""

from __future__ import annotations

from llmplug import StreamEvent, ToolCall, ToolCallDelta

__all__ = ["Calls"]


class _Call:
    __slots__ = ("arguments", "call_id", "index", "item_id", "name", "pieces", "sent")

    def __init__(self, index: int) -> None:
        self.index = index
        self.item_id: str | None = None
        self.call_id: str | None = None
        self.name: str | None = None
        self.pieces: list[str] = []
        self.arguments: str | None = None  # the whole arguments, once an event gives them
        self.sent = False  # whether a ToolCallDelta carried call_id and name yet


class Calls:
    """The function calls of one response.

    A call's pieces are its item (``output_item.added`` / ``.done``, the final response's
    ``output``), its argument deltas and ``function_call_arguments.done``. Servers do not always
    send them in that order: an argument delta may come before its item. Pieces are matched by
    item id, else call_id, else output_index (the first one the event has decides), so none is
    lost. The stream's tool-call deltas carry ``call_id`` and name as soon as they are known, and
    arguments that join to the call's final arguments."""

    __slots__ = ("_by", "_calls", "_latest")

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by: dict[tuple[str, object], _Call] = {}
        self._latest: _Call | None = None

    def __bool__(self) -> bool:
        return bool(self._calls)

    def _find(
        self, item_id: str | None, call_id: str | None, at: int | None, *, item: bool
    ) -> _Call:
        # The first identifier present decides: an item id not seen yet is a call whose item
        # has not come yet, never another call at the same index. With none, an argument event
        # continues the latest call (as on Chat), an item is a call of its own.
        found = None if item else self._latest
        if item_id:
            found = self._by.get(("id", item_id))
        elif call_id:
            found = self._by.get(("call", call_id))
        elif at is not None:
            found = self._by.get(("at", at))
        if found is None:
            found = _Call(len(self._calls))
            self._calls.append(found)
        if item_id:
            found.item_id = found.item_id or item_id
            self._by[("id", item_id)] = found
        if call_id:
            self._by[("call", call_id)] = found
        if at is not None:
            self._by.setdefault(("at", at), found)
        self._latest = found
        return found

    def delta(self, item_id: str | None, at: int | None, piece: str | None) -> list[StreamEvent]:
        """``response.function_call_arguments.delta``."""
        call = self._find(item_id, None, at, item=False)
        if not piece:
            return []
        call.pieces.append(piece)
        return [ToolCallDelta(index=call.index, arguments=piece)]

    def item(
        self,
        item_id: str | None,
        call_id: str | None,
        name: str | None,
        arguments: str | None,
        at: int | None,
    ) -> list[StreamEvent]:
        """A ``function_call`` item, from ``output_item.added`` / ``.done`` or the final output."""
        call = self._find(item_id, call_id, at, item=True)
        call.call_id = call.call_id or call_id
        return self._settle(call, name, arguments)

    def done(
        self, item_id: str | None, at: int | None, name: str | None, arguments: str | None
    ) -> list[StreamEvent]:
        """``response.function_call_arguments.done``."""
        return self._settle(self._find(item_id, None, at, item=False), name, arguments)

    def _settle(self, call: _Call, name: str | None, arguments: str | None) -> list[StreamEvent]:
        call.name = call.name or name
        announce = not call.sent and bool(call.call_id or call.name)
        rest = ""
        if arguments:  # an item just added has "" for arguments: none yet, not empty ones
            call.arguments = arguments
            # What the deltas missed (all of it, when a server sends none), so that a consumer
            # of the stream alone has the same arguments as the final answer.
            streamed = "".join(call.pieces)
            if len(arguments) > len(streamed) and arguments.startswith(streamed):
                rest = arguments[len(streamed) :]
                call.pieces.append(rest)
        if not (announce or rest):
            return []
        call.sent = call.sent or announce
        return [
            ToolCallDelta(
                index=call.index,
                id=call.call_id if announce else None,
                name=call.name if announce else None,
                arguments=rest,
            )
        ]

    def result(self) -> list[ToolCall]:
        """The calls so far, in the order they were first heard of."""
        return [
            ToolCall(
                id=c.call_id or c.item_id or f"call_{c.index}",
                name=c.name or "",
                arguments=c.arguments if c.arguments is not None else "".join(c.pieces),
            )
            for c in self._calls
        ]
