"""What the Responses API sends, as typed Structs: the event, output item and content part types
the parser uses, each decoded by its ``type`` tag.

Every other type is skipped whatever its fields hold. Hosted tools keep adding types whose fields
share our names but not our shapes (a shell call's output ``delta`` is an object, a tool search
item's ``arguments`` too): unknown is not invalid. A type we use with a field of the wrong shape
is still an error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, get_args

import msgspec

from llmplug._plugins._openai import NO_COUNT, Error, RawCount, TokenDetails
from llmplug.wire import JSON_ERRORS

T = TypeVar("T")

#: Decodes with the caller's error policy: llmplug.wire's ``decode_event`` in a stream,
#: ``decode_body`` for a whole body.
Strict = Callable[[msgspec.json.Decoder[Any], bytes], Any]


class _Probe(msgspec.Struct):
    type: Any = None


_probe = msgspec.json.Decoder(_Probe | None)


class ByType(Generic[T]):
    """Decodes JSON objects tagged by ``type`` into the union of Structs it was made with; an
    object of any other type is None. The decoders are built once."""

    __slots__ = ("_each", "_union")

    def __init__(self, union: Any) -> None:
        self._union: msgspec.json.Decoder[T] = msgspec.json.Decoder(union)
        self._each: dict[str, msgspec.json.Decoder[T]] = {
            t.__struct_config__.tag: msgspec.json.Decoder(t) for t in get_args(union) or (union,)
        }

    def fast(self, data: bytes | msgspec.Raw, tag: str = "") -> T | None:
        """``data``'s Struct in one pass, or None, and then :meth:`pick` decides: when ``tag``
        (a stream's ``event:`` line) names a type not ours, at once (an exception costs more
        than decoding a small event twice); when decoding fails, for any reason."""
        if tag and tag not in self._each:
            return None
        try:
            return self._union.decode(data)
        except JSON_ERRORS:
            return None

    def pick(self, data: bytes | msgspec.Raw, strict: Strict, tag: str = "") -> T | None:
        """``data``'s Struct, or None when its type is not one of ours; ``tag`` stands for a
        missing ``type``. The type is read first, so an object we skip is not decoded further.
        Bad JSON, or one of our types with a field of the wrong shape, is raised by
        ``strict``."""
        try:
            probe = _probe.decode(data)
        except JSON_ERRORS:
            probe = strict(_probe, bytes(data))  # raises, with the caller's error
        if probe is None:  # null: nothing there
            return None
        found = tag if probe.type is None else probe.type
        decoder = self._each.get(found) if isinstance(found, str) else None
        if decoder is None:
            return None
        try:
            return decoder.decode(data)
        except JSON_ERRORS:
            broken: T = strict(decoder, bytes(data))  # raises, with the caller's error
            return broken

    def decode(self, data: bytes | msgspec.Raw, strict: Strict) -> T | None:
        """:meth:`fast`, else :meth:`pick`: best where most objects are of our types."""
        found = self.fast(data)
        return found if found is not None else self.pick(data, strict)


# -- content parts ---------------------------------------------------------------------------


class _Part(msgspec.Struct, tag_field="type"):
    pass


class OutputText(_Part, tag="output_text"):
    text: str = ""


class Refusal(_Part, tag="refusal"):
    refusal: str = ""


class SummaryText(_Part, tag="summary_text"):
    text: str = ""


class ReasoningText(_Part, tag="reasoning_text"):
    text: str = ""


message_parts: ByType[OutputText | Refusal] = ByType(OutputText | Refusal)
reasoning_parts: ByType[SummaryText | ReasoningText] = ByType(SummaryText | ReasoningText)


# -- output items ----------------------------------------------------------------------------


class _Item(msgspec.Struct, tag_field="type"):
    id: str | None = None


class FunctionCall(_Item, tag="function_call"):
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None


class MessageItem(_Item, tag="message"):
    # Raw: a part type we skip must not fail the item.
    content: list[msgspec.Raw] | None = None


class ReasoningItem(_Item, tag="reasoning"):
    summary: list[msgspec.Raw] | None = None
    content: list[msgspec.Raw] | None = None
    encrypted_content: str | None = None


Item = FunctionCall | MessageItem | ReasoningItem
items: ByType[Item] = ByType(Item)
#: A stream takes function calls from its items (text and reasoning come as deltas), and
#: reasoning items for their encrypted_content.
stream_items: ByType[FunctionCall | ReasoningItem] = ByType(FunctionCall | ReasoningItem)


# The same items with every part of our types, for a body's first try: one pass when the whole
# output is of our types, as it usually is.
class _KnownMessage(_Item, tag="message"):
    content: list[OutputText | Refusal] | None = None


class _KnownReasoning(_Item, tag="reasoning"):
    summary: list[SummaryText | ReasoningText] | None = None
    content: list[SummaryText | ReasoningText] | None = None
    encrypted_content: str | None = None


# -- the response object ---------------------------------------------------------------------


class Usage(msgspec.Struct):
    input_tokens: RawCount = NO_COUNT
    output_tokens: RawCount = NO_COUNT
    total_tokens: RawCount = NO_COUNT
    input_tokens_details: TokenDetails | None = None
    output_tokens_details: TokenDetails | None = None


class Incomplete(msgspec.Struct):
    reason: str | None = None


class _ResponseFields(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    status: str | None = None
    usage: Usage | None = None
    error: Error | None = None
    incomplete_details: Incomplete | None = None


class Response(_ResponseFields):
    # Raw: decoded item by item (``items``), so that an item type we skip never fails the rest.
    output: list[msgspec.Raw] | None = None


class KnownResponse(_ResponseFields):
    # A body's first try (see _KnownMessage); Response is the second.
    output: list[FunctionCall | _KnownMessage | _KnownReasoning] | None = None


body_decoder = msgspec.json.Decoder(Response)
known_body_decoder = msgspec.json.Decoder(KnownResponse)
AnyMessage = MessageItem | _KnownMessage
AnyReasoning = ReasoningItem | _KnownReasoning


# -- stream events ---------------------------------------------------------------------------


class _Event(msgspec.Struct, tag_field="type"):
    pass


class TextDelta(_Event, tag="response.output_text.delta"):
    delta: str | None = None


class RefusalDelta(_Event, tag="response.refusal.delta"):
    delta: str | None = None


class ReasoningSummaryDelta(_Event, tag="response.reasoning_summary_text.delta"):
    delta: str | None = None


class ReasoningTextDelta(_Event, tag="response.reasoning_text.delta"):
    delta: str | None = None


class ArgumentsDelta(_Event, tag="response.function_call_arguments.delta"):
    item_id: str | None = None
    output_index: int | None = None
    delta: str | None = None


class ArgumentsDone(_Event, tag="response.function_call_arguments.done"):
    item_id: str | None = None
    output_index: int | None = None
    name: str | None = None
    arguments: str | None = None


class ItemAdded(_Event, tag="response.output_item.added"):
    output_index: int | None = None
    item: msgspec.Raw = msgspec.Raw()  # decoded with ``stream_items``: most items are skipped


class ItemDone(_Event, tag="response.output_item.done"):
    output_index: int | None = None
    item: msgspec.Raw = msgspec.Raw()


class Completed(_Event, tag="response.completed"):
    response: Response | None = None


class Incompleted(_Event, tag="response.incomplete"):
    response: Response | None = None


class Failed(_Event, tag="response.failed"):
    response: Response | None = None


class ErrorEvent(_Event, tag="error"):
    code: Any = None
    message: Any = None


Event = (
    TextDelta
    | ReasoningSummaryDelta
    | ReasoningTextDelta
    | ArgumentsDelta
    | RefusalDelta
    | ItemAdded
    | ItemDone
    | ArgumentsDone
    | Completed
    | Incompleted
    | Failed
    | ErrorEvent
)
events: ByType[Event] = ByType(Event)
