"""What the Messages API sends, as typed Structs: the stream events, content blocks and deltas
the parser uses, each decoded by its ``type`` tag.

Every other type (server tools, citations, events added later) is skipped whatever its fields
hold: unknown is not invalid. A type we use with a field of the wrong shape is an error."""

from __future__ import annotations

from typing import Any

import msgspec

# -- usage and errors ------------------------------------------------------------------------


#: A count as the server wrote it (any JSON), read by ``llmplug.wire.count``: a count the
#: decoder would refuse (1e999, "12", -5) must not cost the answer.
NO_COUNT = msgspec.Raw()


class Usage(msgspec.Struct):
    input_tokens: msgspec.Raw = NO_COUNT
    output_tokens: msgspec.Raw = NO_COUNT
    cache_read_input_tokens: msgspec.Raw = NO_COUNT
    cache_creation_input_tokens: msgspec.Raw = NO_COUNT


class Error(msgspec.Struct):
    type: Any = None
    message: Any = None


# -- content blocks --------------------------------------------------------------------------


class _Block(msgspec.Struct, tag_field="type"):
    pass


class TextBlock(_Block, tag="text"):
    text: str = ""


class ToolUseBlock(_Block, tag="tool_use"):
    id: str | None = None
    name: str | None = None
    # Raw: kept as the server's JSON text; empty when absent (llama-server omits it in a
    # stream's start event). msgspec takes no ``Raw | None``.
    input: msgspec.Raw = msgspec.Raw()


class ThinkingBlock(_Block, tag="thinking"):
    thinking: str = ""
    signature: str | None = None


class RedactedThinkingBlock(_Block, tag="redacted_thinking"):
    data: Any = None  # opaque: kept only when it is a string, never refused


Block = TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock
BLOCK_TAGS = frozenset(("text", "tool_use", "thinking", "redacted_thinking"))

# -- deltas ----------------------------------------------------------------------------------


class _Delta(msgspec.Struct, tag_field="type"):
    pass


class TextDelta(_Delta, tag="text_delta"):
    text: str = ""


class JsonDelta(_Delta, tag="input_json_delta"):
    partial_json: str = ""


class ThinkingDelta(_Delta, tag="thinking_delta"):
    thinking: str = ""


class SignatureDelta(_Delta, tag="signature_delta"):
    signature: str = ""


Delta = TextDelta | JsonDelta | ThinkingDelta | SignatureDelta
DELTA_TAGS = frozenset(("text_delta", "input_json_delta", "thinking_delta", "signature_delta"))

# -- stream events ---------------------------------------------------------------------------


class MessageInfo(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct, tag_field="type"):
    pass


class MessageStart(_Event, tag="message_start"):
    message: MessageInfo | None = None


class BlockStart(_Event, tag="content_block_start"):
    index: int = 0
    content_block: Block | None = None


class BlockDelta(_Event, tag="content_block_delta"):
    index: int = 0
    delta: Delta | None = None


class BlockStop(_Event, tag="content_block_stop"):
    index: int = 0


class StopInfo(msgspec.Struct):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(_Event, tag="message_delta"):
    delta: StopInfo | None = None
    usage: Usage | None = None


class MessageStop(_Event, tag="message_stop"):
    pass


class Ping(_Event, tag="ping"):
    pass


class ErrorEvent(_Event, tag="error"):
    error: Error | None = None


Event = (
    MessageStart
    | BlockStart
    | BlockDelta
    | BlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | ErrorEvent
)
EVENT_TAGS = frozenset(
    (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
)

#: One pass for the common case: every type in the event is one of ours.
event_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Event)


# The same events with the nested block or delta kept raw, for the slow path: an event of our
# type whose block or delta is of a type we skip.
class _Typed(msgspec.Struct):
    type: Any = None


class RawBlockStart(msgspec.Struct):
    index: int = 0
    content_block: msgspec.Raw = msgspec.Raw()


class RawBlockDelta(msgspec.Struct):
    index: int = 0
    delta: msgspec.Raw = msgspec.Raw()


probe_decoder = msgspec.json.Decoder(_Typed | None)
raw_start_decoder = msgspec.json.Decoder(RawBlockStart)
raw_delta_decoder = msgspec.json.Decoder(RawBlockDelta)
block_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Block)
delta_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Delta)
event_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    str(t.__struct_config__.tag): msgspec.json.Decoder(t)
    for t in (
        MessageStart,
        BlockStart,
        BlockDelta,
        BlockStop,
        MessageDelta,
        MessageStop,
        Ping,
        ErrorEvent,
    )
}

# -- whole bodies ----------------------------------------------------------------------------


class Body(msgspec.Struct):
    type: Any = None
    id: str | None = None
    model: str | None = None
    # Raw: decoded block by block, so that a block type we skip never fails the rest.
    content: list[msgspec.Raw] | None = None
    stop_reason: str | None = None
    usage: Usage | None = None
    error: Error | None = None


body_decoder = msgspec.json.Decoder(Body)


class KnownBody(Body):
    """A body whose blocks are all of our types, as most are: decoded in one pass."""

    content: list[Block] | None = None  # type: ignore[assignment]


known_body_decoder = msgspec.json.Decoder(KnownBody)
