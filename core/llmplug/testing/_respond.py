"""Writing one response (reply, error, raw bytes or fault) onto a connection."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import suppress

from . import _anthropic as anthropic
from . import _gemini as gemini
from . import _render as render
from ._http import LAST_CHUNK, SSE_TYPE, ClientGone, Connection, chunk, response_head
from ._replies import Error, Fault, Raw, RecordedRequest, Reply

JSON_TYPE = "application/json"
_TICK = 0.01


def _body(reply: Reply, rec: RecordedRequest) -> bytes:
    """The whole body of `reply` in the shape of the request's API."""
    if rec.api == "chat":
        return render.chat_json(reply, rec)
    if rec.api == "anthropic":
        return anthropic.messages_json(reply, rec)
    if rec.api == "gemini":
        return gemini.generate_json(reply, rec)
    return render.responses_json(reply, rec)


def _events(reply: Reply, rec: RecordedRequest) -> list[bytes]:
    """The SSE events of `reply` in the shape of the request's API."""
    if rec.api == "chat":
        return render.chat_events(reply, rec)
    if rec.api == "anthropic":
        return anthropic.messages_events(reply, rec)
    if rec.api == "gemini":
        return gemini.generate_events(reply, rec)
    return render.responses_events(reply, rec)


def render_events(reply: Reply, rec: RecordedRequest) -> list[bytes]:
    """The SSE events (bytes) the server streams for `reply` to `rec`, in its API's shape: for
    a test that sends them cut or split its own way (``Raw(chunks=...)``)."""
    return _events(reply, rec)


def _text_stream(
    rec: RecordedRequest,
) -> render.TextStream | anthropic.MessagesTextStream | gemini.GeminiTextStream:
    if rec.api == "anthropic":
        return anthropic.MessagesTextStream(rec)
    if rec.api == "gemini":
        return gemini.GeminiTextStream(rec)
    return render.TextStream(rec.api, rec)


def error_body(err: Error, rec: RecordedRequest) -> bytes:
    """An error body in the shape of the request's API."""
    return _error_body(err, rec)


def _error_body(err: Error, rec: RecordedRequest) -> bytes:
    if rec.api == "anthropic":
        return anthropic.error_body(err)
    if rec.api == "gemini":
        return gemini.error_body(err)
    return render.error_body(err)


class ResponseWriter:
    """Turns a resolved reply into bytes on a connection, with waits that end on disconnect/stop."""

    def __init__(self) -> None:
        # Set when the server stops: every wait then ends and responses are abandoned.
        self.stopping = False
        # Connections inside a stall, for release_stalls().
        self.stalled: set[Connection] = set()

    async def send(
        self,
        conn: Connection,
        status: int,
        body: bytes,
        content_type: str | None,
        keep: bool,
        extra: Mapping[str, str] | None = None,
    ) -> bool:
        conn.write(response_head(status, content_type, len(body), keep, extra or {}) + body)
        conn.completed = True
        await conn.drain()
        return keep

    async def _pause(self, conn: Connection, seconds: float) -> None:
        """Sleep, ending early (ClientGone) if the client leaves or the server stops."""
        if seconds > 0 and not conn.wake.is_set():
            with suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await conn.wake.wait()
        if conn.gone or self.stopping:
            raise ClientGone

    async def _stream(
        self,
        conn: Connection,
        events: list[bytes],
        delay: float,
        *,
        end: bool = True,
        coalesce: bool = True,
    ) -> None:
        """Send `events` as HTTP chunks, then the terminator if `end`."""
        if coalesce and delay <= 0:
            # One write: still one HTTP chunk per event, without a syscall for each.
            data = b"".join([chunk(event) for event in events])
            conn.write(data + LAST_CHUNK if end else data)
            conn.completed = end
            await conn.drain()
            return
        for i, event in enumerate(events):
            if i:
                await self._pause(conn, delay)
            conn.write(chunk(event))
            await conn.drain()
        if end:
            conn.write(LAST_CHUNK)
            conn.completed = True
            await conn.drain()

    async def respond(
        self, conn: Connection, rec: RecordedRequest, reply: Reply | Error | Raw | Fault, keep: bool
    ) -> bool:
        if isinstance(reply, Fault):
            return await self._fault(conn, rec, reply, keep)
        if isinstance(reply, Raw):
            return await self._raw(conn, reply, keep)
        # Only waits need the disconnect watcher; a response sent in one write finds out anyway.
        chunk_delay = reply.chunk_delay if isinstance(reply, Reply) else 0.0
        if reply.delay > 0 or (rec.stream and chunk_delay > 0):
            conn.watch()
        await self._pause(conn, reply.delay)
        if isinstance(reply, Error):
            if reply.in_stream_after is None or not rec.stream:
                body = _error_body(reply, rec)
                return await self.send(
                    conn, reply.status, body, reply.content_type, keep, reply.headers
                )
            text = _text_stream(rec)
            events = text.prelude() + [text.delta(p) for p in render.filler(reply.in_stream_after)]
            events.append(text.error(reply))
            conn.write(response_head(200, SSE_TYPE, None, keep, reply.headers))
            await self._stream(conn, events, 0.0)
            return keep
        if not rec.stream:
            return await self.send(conn, 200, _body(reply, rec), JSON_TYPE, keep, reply.headers)
        events = _events(reply, rec)
        conn.write(response_head(200, SSE_TYPE, None, keep, reply.headers))
        await self._stream(conn, events, reply.chunk_delay)
        return keep

    async def _raw(self, conn: Connection, raw: Raw, keep: bool) -> bool:
        body = raw.body.encode() if isinstance(raw.body, str) else raw.body
        if raw.chunks is None and not raw.close:
            return await self.send(conn, raw.status, body, raw.content_type, keep, raw.headers)
        conn.watch()
        given = [body] if raw.chunks is None else raw.chunks
        data = [p.encode() if isinstance(p, str) else p for p in given]
        conn.write(response_head(raw.status, raw.content_type, None, keep, raw.headers))
        # Raw chunks are written (and flushed) one by one: tests use them to split events.
        pieces = [d for d in data if d]
        await self._stream(conn, pieces, raw.chunk_delay, end=not raw.close, coalesce=False)
        if raw.close:
            conn.completed = True
            conn.close()
            return False
        return keep

    async def _fault(
        self, conn: Connection, rec: RecordedRequest, fault: Fault, keep: bool
    ) -> bool:
        if fault.kind == "reset_before_headers":
            conn.completed = True
            conn.reset()
            return False
        conn.watch()
        if fault.kind == "stall_after_headers":
            return await self._stall(conn, rec, fault, keep)
        text = _text_stream(rec)
        conn.write(response_head(200, SSE_TYPE, None, keep, {}))
        if fault.kind == "cut_stream":
            events = text.prelude() + [text.delta(p) for p in render.filler(fault.after)]
            await self._stream(conn, events, 0.0, end=False)
            conn.completed = True
            conn.close()
            return False
        # never_ending
        await self._stream(conn, text.prelude(), 0.0, end=False)
        deadline = asyncio.get_running_loop().time() + fault.seconds
        tick = 0
        while asyncio.get_running_loop().time() < deadline:
            await self._pause(conn, _TICK)
            data = chunk(text.delta(" " + chr(97 + tick % 26)))
            if tick % 5 == 4:
                data += chunk(b": keep-alive\n\n")
            conn.write(data)
            await conn.drain()
            tick += 1
        await self._stream(conn, text.finish(), 0.0)
        return keep

    async def _stall(
        self, conn: Connection, rec: RecordedRequest, fault: Fault, keep: bool
    ) -> bool:
        reply = Reply(text="a b c")
        body = b""
        if rec.stream:
            head = response_head(200, SSE_TYPE, None, keep, {})
        else:
            body = _body(reply, rec)
            head = response_head(200, JSON_TYPE, len(body), keep, {})
        # Registered before the headers go out: once a client has seen them, release_stalls()
        # is guaranteed to find this stall.
        self.stalled.add(conn)
        try:
            conn.write(head)
            await conn.drain()
            with suppress(TimeoutError):
                async with asyncio.timeout(fault.seconds):
                    await conn.wake.wait()
        finally:
            self.stalled.discard(conn)
        if conn.gone or self.stopping:
            raise ClientGone
        conn.released = False
        conn.wake.clear()
        if not rec.stream:
            conn.write(body)
            conn.completed = True
            await conn.drain()
            return keep
        await self._stream(conn, _events(reply, rec), 0.0)
        return keep
