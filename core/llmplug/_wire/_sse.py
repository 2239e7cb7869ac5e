"""Incremental Server-Sent Events decoding, shared by every wire format that streams over SSE."""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent", "SSETooLarge", "drop_bom"]

#: An event bigger than this is a broken or hostile stream, not a reply (a 1 MB event is fine).
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    """One dispatched event: its ``event:`` name (``""`` when absent) and its joined ``data:``."""

    event: str
    data: bytes


class SSETooLarge(Exception):
    """An event grew past the decoder's limit."""


def drop_bom(head: bytes, chunk: bytes) -> tuple[bytes | None, bytes]:
    """A stream's first bytes without their UTF-8 BOM: ``head`` is what came before ``chunk``
    while it could still be the start of one. Returns the head to keep (None once we know, so
    that later chunks pay one attribute test) and the bytes to decode. Left in, a BOM would
    glue onto the first field name (BOM + ``data``) and the first event would be lost."""
    chunk = head + chunk
    if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
        return chunk, b""  # the BOM may come cut in pieces
    return None, chunk[len(_BOM) :] if chunk.startswith(_BOM) else chunk


#: What OpenAI's and Anthropic's wires send, and what a proxy that buffers passes on in one
#: read: whole events of one ``data:`` line each, after an ``event:`` line or not, LF line
#: ends. A chunk made only of these is split by the ``re`` engine, in C, not line by line in
#: Python; anything else (a comment, a CR, another field, a blank line too many, a cut event)
#: does not match and takes the general path.
#: (``[^\n]`` is a tight loop in the engine where ``[^\r\n]`` tests a set per byte: the caller
#: refuses a CR with a scan of its own.)
_EVENT = rb"(?:event: ([^\n]*+)\n)?+data: ([^\n]*+)\n\n"  # groups: name, data
_EVENTS = rb"(?:(?:event: [^\n]*+\n)?+data: [^\n]*+\n\n)++"
#: Compiled on first use, so that ``import llmplug`` does not pay for it.
_patterns: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None

#: An event made by ``tuple.__new__``, not by the named tuple's ``__new__`` (a Python function).
_tuple_new = tuple.__new__


def _whole_events(chunk: bytes) -> list[SSEEvent] | None:
    """The events of a chunk made only of whole events of the shapes above, as the general
    path would decode them (the caller checked that no event is pending, that the chunk has no
    CR and that no event in it can be over the size limit); None for anything else."""
    global _patterns
    if _patterns is None:
        _patterns = (re.compile(_EVENT), re.compile(_EVENTS))
    event, events = _patterns
    m = event.fullmatch(chunk)
    if m is not None:  # one event per read: what a provider sends
        name, data = m.groups()
        return [
            _tuple_new(SSEEvent, ("" if name is None else name.decode("utf-8", "replace"), data))
        ]
    if events.fullmatch(chunk) is None:
        return None
    # findall gives b"" for an absent name, which an empty name decodes as too.
    return [
        _tuple_new(SSEEvent, (name.decode("utf-8", "replace") if name else "", data))
        for name, data in event.findall(chunk)
    ]


class SSEDecoder:
    """Turns a byte stream, cut anywhere, into events (the WHATWG rules: a leading UTF-8 BOM
    dropped, LF, CR or CRLF line ends, ``:`` comments, one leading space dropped, several
    ``data:`` lines joined with LF)."""

    __slots__ = (
        "_data",
        "_event",
        "_head",
        "_max",
        "_pending",
        "_pending_size",
        "_size",
        "_skip_lf",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._skip_lf = False
        self._data: list[bytes] = []
        self._event = ""
        self._size = 0
        self._max = max_event_bytes
        self._head: bytes | None = b""  # see drop_bom

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; returns the events it completed (often none or one)."""
        if self._head is not None:
            self._head, chunk = drop_bom(self._head, chunk)
            if self._head is not None:
                return []
        if (
            chunk[-2:] == b"\n\n"
            and not (self._pending or self._data or self._skip_lf or self._event)
            and len(chunk) - 8 <= self._max  # no event in it can be over the limit
            and b"\r" not in chunk
            and (events := _whole_events(chunk)) is not None
        ):
            return events
        if self._skip_lf and chunk:  # an empty chunk must not forget the pending CR
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if self._pending and b"\n" not in chunk and b"\r" not in chunk:
            # Still inside one long line: keep the pieces and join them once at its end, so a
            # big event costs linear time, not a copy of everything so far per chunk.
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size + self._size > self._max:
                raise SSETooLarge(f"an SSE event is larger than {self._max} bytes")
            return []
        buf = b"".join((*self._pending, chunk)) if self._pending else chunk
        lines = buf.splitlines(keepends=True)
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            tail = lines.pop()
            self._pending = [tail]
            self._pending_size = len(tail)
            if self._pending_size + self._size > self._max:
                raise SSETooLarge(f"an SSE event is larger than {self._max} bytes")
        else:
            self._pending = []
            self._pending_size = 0
        if buf.endswith(b"\r"):
            # A CR at the end of the chunk may be half of a CRLF split across chunks.
            self._skip_lf = True
        out: list[SSEEvent] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:
                if self._data:
                    out.append(SSEEvent(self._event, b"\n".join(self._data)))
                self._data = []
                self._event = ""
                self._size = 0
                continue
            if line[0] == 58:  # b":" -- a comment, e.g. OpenRouter's keep-alives
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._size += len(value)
                if self._size > self._max:
                    raise SSETooLarge(f"an SSE event is larger than {self._max} bytes")
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
            # id: and retry: are valid fields that no LLM wire format needs.
        return out

    def close(self) -> list[SSEEvent]:
        """End of input: an event without its closing blank line still counts, like browsers do
        only when the data is complete; we dispatch it so a parser can judge it. A stream that
        ended inside its first three bytes, before a BOM was complete, holds no event."""
        return self.feed(b"\n\n") if self._pending or self._data else []
