"""What a store holds for one answer: the Completion, and a stream's events as they came, so a
replay is the same events, fragment for fragment."""

from __future__ import annotations

import msgspec

from llmplug import Completion, Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from llmplug.wire import events_of

__all__ = ["Entry", "decode", "encode", "replay"]

#: Bumped when the format changes: an entry of another version is a miss (and overwritten).
VERSION = 1

Delta = TextDelta | ReasoningDelta | ToolCallDelta


class Entry(msgspec.Struct, array_like=True):
    version: int
    completion: Completion
    #: The stream's events before its Done; None for an answer of chat() (replayed whole).
    events: list[Delta] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode(completion: Completion, events: list[Delta] | None) -> bytes:
    if completion.cached or completion.saved_cost is not None:
        # What a hit must not carry over from the answer it was made from.
        completion = msgspec.structs.replace(completion, cached=False, saved_cost=None)
    try:
        return _encoder.encode(Entry(VERSION, completion, events))
    except (TypeError, ValueError, OverflowError):
        # ``raw`` is whatever the wire kept: not every wire's can be stored.
        bare = msgspec.structs.replace(completion, raw=None)
        return _encoder.encode(Entry(VERSION, bare, events))


def decode(body: bytes) -> Entry | None:
    """The entry, or None for one that does not decode (another version, a damaged body)."""
    try:
        entry = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
        return None
    return entry if entry.version == VERSION else None


def replay(entry: Entry, completion: Completion) -> list[StreamEvent]:
    """The events a hit streams: the stored stream's own, or the whole answer's (as a server
    that answered a stream with one body), then ``Done(completion)``."""
    if entry.events is not None:
        return [*entry.events, Done(completion)]
    return events_of(completion)
