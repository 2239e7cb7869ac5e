"""A bench server that sends each SSE event on its own, as providers do, or a whole stream at once.

``LLMTestServer`` writes a whole stream in one write, so a client reads all of a reply's events
in one socket read and pays its per-read cost (the HTTP layer, the SSE decoder, each async
generator between the socket and the caller) once per reply. A provider sends each event when
the model produces it, and the client pays that cost once per event. This server does the same:
every event is its own HTTP chunk, written and flushed on its own (TCP_NODELAY: its own TCP
segment), then ``gap`` seconds pass before the next one so that the client has read it. Whole
(non-stream) bodies go out in one write, as from any server.

The bytes are ``LLMTestServer``'s (the same renderer: same text in the same chunks, ids differ),
so the bench's clients and checks work on either server.

With ``burst=True`` it sends a whole stream as one HTTP chunk in one write, head included, as a
proxy that buffers the body sends it (or a fast local model whose events leave in one TCP
segment, read in one socket read): the client gets all 20 events from one read of the HTTP layer,
and splits them itself.

    python bench/sse_server.py --gap 0.001    # serve on a free port until interrupted
    python bench/sse_server.py --burst
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from typing import Literal

import msgspec

from llmplug.testing import RecordedRequest, Reply
from llmplug.testing._anthropic import messages_events, messages_json
from llmplug.testing._http import (
    LAST_CHUNK,
    SSE_TYPE,
    ClientGone,
    Connection,
    HttpError,
    chunk,
    response_head,
)
from llmplug.testing._render import chat_events, chat_json, responses_events, responses_json

__all__ = ["DEFAULT_GAP", "ChunkedSSEServer"]

JSON_TYPE = "application/json"
#: asyncio's timers fire on whole milliseconds (epoll's resolution): 1 ms is the shortest pause
#: that still lets a client read each event before the next one is sent.
DEFAULT_GAP = 0.001

_decode = msgspec.json.Decoder().decode
_WHOLE = {"chat": chat_json, "responses": responses_json, "anthropic": messages_json}
_EVENTS = {"chat": chat_events, "responses": responses_events, "anthropic": messages_events}


class ChunkedSSEServer:
    """Answers ``/chat/completions``, ``/responses`` and ``/messages`` (Anthropic) with ``reply``
    from a daemon thread.

    ``gap`` may be changed while it runs (it is read before each pause). With ``burst`` a stream
    is one HTTP chunk in one write (``gap`` unused). A request for the ``stall`` model gets its
    first event and then nothing until the client goes away (the bench's memory test)."""

    def __init__(
        self,
        reply: Reply,
        *,
        gap: float = DEFAULT_GAP,
        burst: bool = False,
        stall: str | None = None,
        port: int = 0,
    ) -> None:
        self.reply = reply
        self.gap = gap
        self.burst = burst
        self.stall = stall
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[Connection] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ChunkedSSEServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._main(ready))
            except BaseException as exc:
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="ChunkedSSEServer", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # The bench opens up to 1,000 connections in bursts: the default backlog (100) drops some.
        server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stop.wait()
        server.close()
        for conn in list(self._conns):
            conn.close()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)  # sets TCP_NODELAY: each write leaves at once
        self._conns.add(conn)
        try:
            while (request := await conn.read_request()) is not None:
                if not await self._answer(conn, request.target, request.body):
                    break
                if not request.keep_alive:
                    break
        except (ClientGone, HttpError, ConnectionError):
            pass
        finally:
            self._conns.discard(conn)
            await conn.unwatch()
            conn.close()

    async def _answer(self, conn: Connection, target: str, body: bytes) -> bool:
        path = target.partition("?")[0]
        api: Literal["chat", "responses", "anthropic"]
        if path.endswith("/chat/completions"):
            api = "chat"
        elif path.endswith("/responses"):
            api = "responses"
        elif path.endswith("/messages"):
            api = "anthropic"
        else:
            conn.write(response_head(404, JSON_TYPE, 2, True, {}) + b"{}")
            await conn.drain()
            return True
        data = _decode(body) if body else {}
        stream = isinstance(data, dict) and data.get("stream") is True
        rec = RecordedRequest(
            method="POST",
            path=path,
            headers={},
            body=body,
            json=data,
            api_key=None,
            stream=stream,
            api=api,
        )
        if not stream:
            out = _WHOLE[api](self.reply, rec)
            conn.write(response_head(200, JSON_TYPE, len(out), True, {}) + out)
            await conn.drain()
            return True
        events = _EVENTS[api](self.reply, rec)
        head = response_head(200, SSE_TYPE, None, True, {})
        if self.burst and not (self.stall is not None and rec.model == self.stall):
            conn.write(head + chunk(b"".join(events)) + LAST_CHUNK)
            await conn.drain()
            return True
        conn.write(head)
        if self.stall is not None and rec.model == self.stall:
            # The role chunk, then the first text: a client has an event to show.
            conn.write(chunk(events[0]) + chunk(events[1]))
            await conn.drain()
            conn.watch()
            await conn.wake.wait()
            return False
        for event in events:
            conn.write(chunk(event))
            await conn.drain()
            await asyncio.sleep(self.gap)
        conn.write(LAST_CHUNK)
        await conn.drain()
        return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--gap", type=float, default=DEFAULT_GAP, help="seconds between events")
    p.add_argument("--burst", action="store_true", help="a whole stream as one chunk, one write")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    reply = Reply(text="Hello from the chunked SSE server, one event at a time.", chunks=20)
    server = ChunkedSSEServer(reply, gap=args.gap, burst=args.burst, port=args.port).start()
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
