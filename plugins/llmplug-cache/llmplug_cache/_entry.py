"""What a store holds for one answer, in one of two forms:

- **raw**: an answer of ``chat()`` from an interface (not a group), as ``b"R"``, its request id
  and cost (JSON), a newline, then the reply's body as the server sent it (``Completion.raw``).
  A hit parses that body again with the wire's parser, as the attempt did. A miss keeps a
  ``RawBody``, whose bytes the store's writer thread makes when it writes: the event loop
  encodes nothing (encoding the whole answer was a fifth of what a miss cost, timed inside
  whole calls, and even this short head cost 2 µs there: code run once per call is slow), and
  the body is about half the size (the writer's cost goes with the bytes);
- **entry**: everything else (a stream's answer, a group's, one whose ``raw`` is not bytes), an
  ``Entry``, MessagePack: the Completion, and a stream's events as they came, so a replay is
  the same events, fragment for fragment.

A body of either form that does not decode, or no longer parses, is a miss (and overwritten).
A process of an earlier release reads a raw body as one that does not decode."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from llmplug import Completion, Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from llmplug.wire import events_of, safe_usage

__all__ = ["Body", "Entry", "RawBody", "decode", "encode", "replay"]

#: Bumped when the format changes: an entry of another version is a miss (and overwritten).
VERSION = 1
#: The first byte of a raw body (an entry's is MessagePack's array of 3, 0x93).
RAW = b"R"

Delta = TextDelta | ReasoningDelta | ToolCallDelta


class Entry(msgspec.Struct, array_like=True):
    version: int
    completion: Completion
    #: The stream's events before its Done; None for an answer of chat() (replayed whole).
    events: list[Delta] | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)
_head = msgspec.json.Encoder().encode
_read_head = msgspec.json.Decoder(tuple[str | None, float | None]).decode


class RawBody(msgspec.Struct, gc=False):
    """An answer to store in the raw form, its body not made yet: ``bytes(raw_body)`` makes it
    (the store's writer thread does, with a batch of answers, where this code runs hot)."""

    raw: bytes
    request_id: str | None
    cost: float | None

    def __bytes__(self) -> bytes:
        return b"".join((RAW, _head((self.request_id, self.cost)), b"\n", self.raw))


#: What a store keeps for an answer: its body, or a RawBody that makes it.
Body = bytes | RawBody


def encode(completion: Completion, events: list[Delta] | None, reparse: bool = False) -> Body:
    """What to store. ``reparse``: the answer is what the call's wire parser makes of
    ``completion.raw`` (an interface's answer, not a group's), so it may be stored raw."""
    if completion.cached or completion.saved_cost is not None:
        # What a hit must not carry over from the answer it was made from.
        completion = msgspec.structs.replace(completion, cached=False, saved_cost=None)
    elif reparse and events is None and type(completion.raw) is bytes:
        return RawBody(completion.raw, completion.request_id, completion.cost)
    try:
        # (A tuple: the same bytes as an Entry, which is array-like, without making one.)
        return _encoder.encode((VERSION, completion, events))
    except (TypeError, ValueError, OverflowError):
        # ``raw`` is whatever the wire kept: not every wire's can be stored.
        bare = msgspec.structs.replace(completion, raw=None)
        return _encoder.encode((VERSION, bare, events))


def decode(body: Body, parse: Callable[[bytes], Completion]) -> Entry | None:
    """The entry, or None for one that does not decode (another version, a damaged body, a
    raw body that ``parse``, the wire's parser, refuses)."""
    if type(body) is RawBody:  # (an answer not written yet)
        return _parsed(body.raw, body.request_id, body.cost, parse)
    assert isinstance(body, bytes)
    if body[:1] == RAW:
        try:
            end = body.index(b"\n")  # (JSON has no raw newline: the head's end)
            request_id, cost = _read_head(body[1:end])
        except Exception:
            return None
        return _parsed(body[end + 1 :], request_id, cost, parse)
    try:
        entry = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError):
        return None
    return entry if entry.version == VERSION else None


def _parsed(
    raw: bytes, request_id: str | None, cost: float | None, parse: Callable[[bytes], Completion]
) -> Entry | None:
    try:
        c = parse(raw)
    except Exception:  # a plugin's parser may raise anything
        return None
    usage = c.usage if c.usage is None else safe_usage(c.usage)
    # As the attempt made it: its parser's answer with its books (see Attempt.ok).
    return Entry(VERSION, msgspec.structs.replace(c, usage=usage, request_id=request_id, cost=cost))


def replay(entry: Entry, completion: Completion) -> list[StreamEvent]:
    """The events a hit streams: the stored stream's own, or the whole answer's (as a server
    that answered a stream with one body), then ``Done(completion)``."""
    if entry.events is not None:
        return [*entry.events, Done(completion)]
    return events_of(completion)
