"""Just enough HTTP/1.1 over asyncio streams: requests in, raw bytes out.

Hand-rolled rather than built on a framework so that faults can be raw: a connection can be reset,
a chunked body left unterminated, headers sent and then nothing.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus

MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024
LAST_CHUNK = b"0\r\n\r\n"
SSE_TYPE = "text/event-stream; charset=utf-8"


class HttpError(Exception):
    """A request the server cannot parse; answered with `status`, then the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientGone(Exception):
    """The client closed the connection, or the server is stopping: abandon the response."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(
    status: int,
    content_type: str | None,
    length: int | None,
    keep_alive: bool,
    extra: Mapping[str, str],
) -> bytes:
    """Status line and headers; `length` None means a chunked body. `extra` wins over defaults."""
    fields: dict[str, str] = {}
    if content_type is not None:
        fields["content-type"] = content_type
    if length is None:
        fields["transfer-encoding"] = "chunked"
    else:
        fields["content-length"] = str(length)
    if content_type is not None and content_type.startswith("text/event-stream"):
        fields["cache-control"] = "no-cache"
    if not keep_alive:
        fields["connection"] = "close"
    for name, value in extra.items():
        fields[name.lower()] = value
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    lines += [f"{name}: {value}" for name, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class Connection:
    """One client connection: a read buffer, disconnect detection and write helpers."""

    __slots__ = (
        "buf",
        "completed",
        "gone",
        "reader",
        "released",
        "transport",
        "wake",
        "watcher",
        "writer",
    )

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = writer.transport
        sock = self.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio only sets TCP_NODELAY when the socket's proto is IPPROTO_TCP, which sockets
            # from socket.create_server() are not (proto 0): without it every streamed event waits
            # for the client's delayed ACK (~40 ms).
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.gone = False
        # Set when a wait on this connection must end early: client gone, stall released, server
        # stopping. One event per connection keeps every wait a single cheap await.
        self.wake = asyncio.Event()
        self.released = False
        # True once the last byte of the response is handed to the transport: a disconnect after
        # that is the client closing a finished response, not abandoning it.
        self.completed = False
        self.watcher: asyncio.Task[None] | None = None

    async def _read_more(self) -> bool:
        try:
            data = await self.reader.read(65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    async def _find(self, sep: bytes, start: int) -> int:
        while (at := self.buf.find(sep, start)) < 0:
            if len(self.buf) - start > MAX_HEAD:
                raise HttpError(431, "request head or chunk line too long")
            if not await self._read_more():
                raise ClientGone
        return at

    async def _fill(self, size: int) -> None:
        while len(self.buf) < size:
            if not await self._read_more():
                raise ClientGone

    async def read_request(self) -> HttpRequest | None:
        """The next request, or None when the client closed the connection between requests."""
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            if len(self.buf) > MAX_HEAD:
                raise HttpError(431, "request head too large")
            if not await self._read_more():
                return None
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise HttpError(400, "malformed request line") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, "malformed header line")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body, consumed = await self._read_chunked(start)
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise HttpError(400, "bad content-length") from None
            if not 0 <= length <= MAX_BODY:
                raise HttpError(413, "request body too large")
            consumed = start + length
            if len(self.buf) < consumed and headers.get("expect", "").lower() == "100-continue":
                self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await self._fill(consumed)
            body = bytes(self.buf[start:consumed])
        del self.buf[:consumed]
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection
        else:
            keep_alive = "close" not in connection
        return HttpRequest(method, target, headers, body, keep_alive)

    async def _read_chunked(self, pos: int) -> tuple[bytes, int]:
        parts: list[bytes] = []
        total = 0
        while True:
            eol = await self._find(b"\r\n", pos)
            try:
                size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            except ValueError:
                raise HttpError(400, "bad chunk size") from None
            pos = eol + 2
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise HttpError(413, "request body too large")
            await self._fill(pos + size + 2)
            parts.append(bytes(self.buf[pos : pos + size]))
            pos += size + 2
        # Trailers, if any, end at an empty line; they are read and dropped.
        eol = await self._find(b"\r\n", pos)
        end = pos + 2 if eol == pos else await self._find(b"\r\n\r\n", pos) + 4
        return b"".join(parts), end

    def watch(self) -> None:
        """Notice the client closing while a response is in progress (a stall sends nothing)."""
        if self.watcher is None and not self.gone:
            self.watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        # Bytes that arrive meanwhile (a pipelined request) stay in buf for the next read_request.
        while await self._read_more():
            pass
        self.gone = True
        self.wake.set()

    async def unwatch(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            # asyncio.wait neither raises the watcher's CancelledError nor swallows our own.
            await asyncio.wait([watcher])

    def write(self, data: bytes) -> None:
        if self.gone or self.transport.is_closing():
            self.gone = True
            raise ClientGone
        self.writer.write(data)

    async def drain(self) -> None:
        try:
            await self.writer.drain()
        except OSError:
            self.gone = True
            raise ClientGone from None

    def reset(self) -> None:
        """Abort with a TCP RST rather than a FIN, so the client sees a connection reset."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()
