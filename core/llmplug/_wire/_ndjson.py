"""Incremental NDJSON framing: one JSON document per line (Ollama's ``/api/chat`` streams).

Each line is handed to the parser as an :class:`SSEEvent` with an empty ``event`` and the line
as ``data``, so a parser's ``feed`` has one signature whatever its framing."""

from __future__ import annotations

from ._sse import DEFAULT_MAX_EVENT_BYTES, SSEEvent, SSETooLarge, drop_bom

__all__ = ["NDJSONDecoder"]


class NDJSONDecoder:
    """Turns a byte stream, cut anywhere, into one event per non-blank line (LF or CRLF line
    ends; a leading UTF-8 BOM dropped; a line longer than ``max_line_bytes`` raises
    :class:`SSETooLarge`, the SSE decoder's error, so the core handles both alike)."""

    __slots__ = ("_head", "_max", "_pending", "_pending_size")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._max = max_line_bytes
        self._head: bytes | None = b""  # see drop_bom

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode a chunk; returns the lines it completed."""
        if self._head is not None:
            self._head, chunk = drop_bom(self._head, chunk)
            if self._head is not None:
                return []
        if b"\n" not in chunk:
            # Still inside one line: keep the pieces, join them once at its end (linear time).
            if chunk:
                self._pending.append(chunk)
                self._pending_size += len(chunk)
                if self._pending_size > self._max:
                    raise SSETooLarge(f"an NDJSON line is larger than {self._max} bytes")
            return []
        buf = b"".join((*self._pending, chunk)) if self._pending else chunk
        lines = buf.split(b"\n")
        tail = lines.pop()
        self._pending = [tail] if tail else []
        self._pending_size = len(tail)
        out: list[SSEEvent] = []
        for line in lines:
            if len(line) > self._max:
                raise SSETooLarge(f"an NDJSON line is larger than {self._max} bytes")
            line = line.strip()
            if line:
                out.append(SSEEvent("", line))
        if self._pending_size > self._max:
            raise SSETooLarge(f"an NDJSON line is larger than {self._max} bytes")
        return out

    def close(self) -> list[SSEEvent]:
        """End of input: a last line without its newline still counts."""
        return self.feed(b"\n") if self._pending else []
