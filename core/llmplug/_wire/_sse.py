"""Incremental Server-Sent Events decoding, shared by every wire format that streams over SSE."""

from __future__ import annotations

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


def _whole_events(chunk: bytes, limit: int) -> list[SSEEvent] | None:
    """The events of a chunk made only of whole events in the two shapes OpenAI's wires send
    (``data: ...`` and ``event: ...`` + ``data: ...``, LF line ends), as the general path would
    decode them; None for anything else. A read that brings a whole reply (a fast local model,
    a proxy that buffers) is split once, not line by line."""
    parts = chunk.split(b"\n\n")
    parts.pop()  # the empty bytes after the final blank line (the caller checked it is there)
    out: list[SSEEvent] = []
    for part in parts:
        if part[:6] == b"data: ":
            if part.find(b"\n", 6) >= 0:
                return None
            name, data = "", part[6:]
        elif part[:7] == b"event: ":
            end = part.find(b"\n", 7)
            if end < 0 or part[end + 1 : end + 7] != b"data: " or part.find(b"\n", end + 7) >= 0:
                return None
            name, data = part[7:end].decode("utf-8", "replace"), part[end + 7 :]
        else:
            return None  # a comment, a blank line too many, another field: the general path
        if len(data) > limit:
            return None  # the general path raises
        out.append(SSEEvent(name, data))
    return out


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
            chunk[:6] == b"data: "
            and chunk[-2:] == b"\n\n"
            and chunk.find(b"\n", 6) == len(chunk) - 2
            and not (self._pending or self._data or self._skip_lf or self._event)
            and len(chunk) - 8 <= self._max
            and b"\r" not in chunk
        ):
            # What providers send: one whole one-line event per read. The general path gives
            # the same event, splitting lines and joining fields for it.
            return [SSEEvent("", chunk[6:-2])]
        if (
            chunk[-2:] == b"\n\n"
            and not (self._pending or self._data or self._skip_lf or self._event)
            and b"\r" not in chunk
            and (events := _whole_events(chunk, self._max)) is not None
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
