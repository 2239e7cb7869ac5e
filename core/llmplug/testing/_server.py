"""LLMTestServer: an OpenAI-compatible HTTP/1.1 server on a real socket, run in its own thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any, Self, TypeAlias

import msgspec

from . import _render as render
from ._http import ClientGone, Connection, HttpError, HttpRequest, response_head
from ._replies import Api, Error, Fault, Raw, RecordedRequest, Reply
from ._respond import JSON_TYPE, ResponseWriter, error_body
from ._validate import malformed

__all__ = ["Handler", "LLMTestServer", "ReplyLike", "Responder", "echo"]

log = logging.getLogger("llmplug.testing")

ReplyLike: TypeAlias = Reply | Error | Raw | Fault | str
Responder: TypeAlias = Callable[[RecordedRequest], ReplyLike]
Handler: TypeAlias = Callable[[RecordedRequest], ReplyLike | None]
_Waiter: TypeAlias = tuple[Callable[[], bool], asyncio.AbstractEventLoop, "asyncio.Future[None]"]

_decode = msgspec.json.Decoder().decode


def echo(request: RecordedRequest) -> Reply:
    """The initial default: ``Reply(text="echo: " + <last user message text>)``."""
    return Reply(text="echo: " + request.last_user_text)


def _query_key(query: str) -> str | None:
    """A ``key=`` query parameter (Gemini's other place for the key)."""
    from urllib.parse import parse_qs

    keys = parse_qs(query).get("key") if query else None
    return keys[0] if keys else None


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class LLMTestServer:
    """A local OpenAI-compatible server (Chat Completions and Responses) for tests and demos,
    which also speaks Anthropic Messages (``POST /v1/messages``).

    Replies come from, in order: `handler` (if it returns non-None), the queue pushed for the
    request's API key, the shared queue, then `default` (a reply or a callable). Handlers and
    callables run on the server's thread and must not block. A str anywhere a reply is expected
    means ``Reply(text=...)``. Every request is recorded in `requests` (unless ``record=False``,
    which only counts them: for long-running benchmark servers).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, record: bool = True) -> None:
        self.host = host
        self.record = record
        self.default: ReplyLike | Responder = echo
        self.handler: Handler | None = None
        self.models: list[str] = [render.DEFAULT_MODEL]
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self._port = port
        self._cond = threading.Condition()
        self._queue: deque[ReplyLike] = deque()
        self._keyed: dict[str, deque[ReplyLike]] = {}
        self._count = 0
        self._aborts = 0
        self._accepted = 0
        self._conns: set[Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[_Waiter] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._out = ResponseWriter()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve from a daemon thread; return self once the socket is listening.

        After stop(), start() may be called again: it binds the port it had before.
        """
        if self._thread is not None:
            raise RuntimeError("LLMTestServer already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._out = ResponseWriter()
        thread = threading.Thread(
            target=self._run, args=(ready, failure), name="LLMTestServer", daemon=True
        )
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (ending all waits), join the thread."""
        thread, loop, event = self._thread, self._loop, self._stop_event
        if thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("LLMTestServer.stop() called from the server's own thread")
        if loop is not None and event is not None:
            with suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)
        thread.join()
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def port(self) -> int:
        """The bound port (the requested one before start())."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the base_url an OpenAI-compatible client needs."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self._port}/v1"

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._main(ready))
        except BaseException as exc:
            if not ready.is_set():
                failure.append(exc)
            else:
                log.exception("LLMTestServer crashed")
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._port), family=family, backlog=1024)
        try:
            server = await asyncio.start_server(self._serve, sock=sock, backlog=1024)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            await self._shutdown(server)

    async def _shutdown(self, server: asyncio.Server) -> None:
        self._out.stopping = True
        server.close()
        for conn in list(self._conns):
            conn.wake.set()
            conn.transport.abort()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=2.0)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await server.wait_closed()

    # -- scripting ------------------------------------------------------------------------------

    def push(self, *replies: ReplyLike, key: str | None = None) -> None:
        """Queue replies, consumed first in, first out; with `key`, only by requests with that
        API key (a key's queue is tried before the shared one). A POST to a path of no known
        API (a plugin's own wire) takes a queued reply too, typically a `Raw`."""
        with self._cond:
            queue = self._queue if key is None else self._keyed.setdefault(key, deque())
            queue.extend(replies)

    def clear(self) -> None:
        """Drop queued replies, recorded requests and counters; reset `default` and `handler`."""
        with self._cond:
            self._queue.clear()
            self._keyed.clear()
            self.requests.clear()
            self.errors.clear()
            self._count = 0
            self._aborts = 0
            self._accepted = 0
            self.default = echo
            self.handler = None

    def release_stalls(self) -> None:
        """Wake every ``Fault("stall_after_headers")`` currently stalled; they then complete.

        Returns once the server thread has woken them.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            return
        if threading.current_thread() is self._thread:
            self._release()
            return
        done = threading.Event()

        def release() -> None:
            self._release()
            done.set()

        with suppress(RuntimeError):  # the loop already ended: nothing is stalled
            loop.call_soon_threadsafe(release)
            done.wait(5.0)

    def _release(self) -> None:
        for conn in self._out.stalled:
            conn.released = True
            conn.wake.set()

    # -- observing ------------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        """Client connections currently open."""
        return len(self._conns)

    @property
    def connections_accepted(self) -> int:
        """Connections clients opened since the start (or the last :meth:`clear`): a client
        that reuses its connections opens few."""
        return self._accepted

    @property
    def client_aborts(self) -> int:
        """Responses the client abandoned: it closed the connection before the last byte was sent
        (a cancelled stream, a client-side timeout during a stall or delay)."""
        return self._aborts

    def wait_for_requests(self, n: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `n` requests arrived (since start or clear()); return `requests`."""
        self._wait(lambda: self._count >= n, timeout, f"{n} request(s)")
        with self._cond:
            return list(self.requests)

    async def requests_arrived(
        self,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the sync wait
    ) -> list[RecordedRequest]:
        """Async `wait_for_requests`: does not block the caller's event loop."""
        await self._await(lambda: self._count >= n, timeout, f"{n} request(s)")
        with self._cond:
            return list(self.requests)

    def wait_for_disconnects(self, timeout: float = 5.0) -> None:
        """Block until no client connection is open (the client closed its pool, or every
        connection it used was closed). To check that a client closed one cancelled stream while
        its pool keeps other connections alive, use `wait_for_client_aborts`."""
        self._wait(lambda: not self._conns, timeout, "all connections to close")

    async def connections_closed(
        self,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the sync wait
    ) -> None:
        """Async `wait_for_disconnects`."""
        await self._await(lambda: not self._conns, timeout, "all connections to close")

    def wait_for_client_aborts(self, n: int = 1, timeout: float = 5.0) -> None:
        """Block until the client abandoned at least `n` responses (see `client_aborts`)."""
        self._wait(lambda: self._aborts >= n, timeout, f"{n} client abort(s)")

    async def client_aborts_reached(
        self,
        n: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the sync wait
    ) -> None:
        """Async `wait_for_client_aborts`."""
        await self._await(lambda: self._aborts >= n, timeout, f"{n} client abort(s)")

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError(f"LLMTestServer: timed out after {timeout}s waiting for {what}")

    async def _await(self, predicate: Callable[[], bool], limit: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        waiter: _Waiter = (predicate, loop, fut)
        with self._cond:
            if predicate():
                return
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(limit):
                await fut
        except TimeoutError:
            raise TimeoutError(
                f"LLMTestServer: timed out after {limit}s waiting for {what}"
            ) from None
        finally:
            with self._cond:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _changed(self) -> None:
        """Wake sync and async waiters; call with self._cond held."""
        self._cond.notify_all()
        for waiter in list(self._waiters):
            predicate, loop, fut = waiter
            if predicate():
                self._waiters.remove(waiter)
                with suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                    loop.call_soon_threadsafe(_set_done, fut)

    # -- serving --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._cond:
            self._conns.add(conn)
            self._accepted += 1
            self._changed()
        try:
            while not self._out.stopping:
                try:
                    request = await conn.read_request()
                except HttpError as exc:
                    body = render.simple_error(exc.status, exc.message, "invalid_request_error")
                    conn.write(response_head(exc.status, JSON_TYPE, len(body), False, {}) + body)
                    break
                if request is None or not await self._dispatch(conn, request):
                    break
        except (ClientGone, OSError):
            pass
        except Exception:
            log.exception("LLMTestServer: unexpected error")
        finally:
            await conn.unwatch()
            conn.close()
            with self._cond:
                self._conns.discard(conn)
                self._changed()
            if task is not None:
                self._tasks.discard(task)

    def _recorded(self, request: HttpRequest) -> tuple[RecordedRequest, bool]:
        path, _, query = request.target.partition("?")
        api: Api = "other"
        if path.endswith("/chat/completions"):
            api = "chat"
        elif path.endswith("/responses"):
            api = "responses"
        elif path.endswith("/messages"):
            api = "anthropic"
        elif path.endswith((":generateContent", ":streamGenerateContent")):
            api = "gemini"
        data: Any = None
        valid = True
        if request.body:
            try:
                data = _decode(request.body)
            except msgspec.DecodeError:
                valid = False
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        key = key or request.headers.get("x-api-key") or request.headers.get("api-key")
        key = key or request.headers.get("x-goog-api-key") or _query_key(query)
        stream = isinstance(data, dict) and data.get("stream") is True
        if api == "gemini":
            stream = path.endswith(":streamGenerateContent")
        rec = RecordedRequest(
            method=request.method,
            path=path,
            headers=request.headers,
            body=request.body,
            json=data,
            api_key=key,
            stream=stream,
            api=api,
            query=query,
        )
        return rec, valid and isinstance(data, dict)

    async def _dispatch(self, conn: Connection, request: HttpRequest) -> bool:
        """Answer one request; return whether the connection stays open."""
        rec, valid = self._recorded(request)
        with self._cond:
            self._count += 1
            if self.record:
                self.requests.append(rec)
            self._changed()
        keep = request.keep_alive
        if rec.api == "other" and not (rec.method == "POST" and self._scripted(rec)):
            if rec.method == "GET" and rec.path.endswith("/models"):
                return await self._out.send(
                    conn, 200, render.models_body(self.models), JSON_TYPE, keep
                )
            body = render.simple_error(404, f"Unknown path {rec.path}", "invalid_request_error")
            return await self._out.send(conn, 404, body, JSON_TYPE, keep)
        if rec.method != "POST":
            body = render.simple_error(405, "Use POST", "invalid_request_error")
            return await self._out.send(conn, 405, body, JSON_TYPE, keep)
        if not valid:
            body = render.simple_error(400, "Invalid JSON body", "invalid_request_error")
            return await self._out.send(conn, 400, body, JSON_TYPE, keep)
        problem = malformed(rec)
        if problem is not None:
            # Refused as the wire's server would refuse it: a client bug shows as a 400.
            body = error_body(Error(status=400, message=problem), rec)
            return await self._out.send(conn, 400, body, JSON_TYPE, keep)
        reply = self._resolve(rec)
        conn.completed = False
        try:
            return await self._out.respond(conn, rec, reply, keep)
        except ClientGone:
            return False
        finally:
            await conn.unwatch()
            if conn.gone and not conn.completed and not self._out.stopping:
                with self._cond:
                    self._aborts += 1
                    self._changed()

    def _scripted(self, rec: RecordedRequest) -> bool:
        """Whether a reply is scripted for ``rec``: a POST to a path of no known API (a
        plugin's own endpoint, such as Ollama's ``/api/chat``) is answered from the script like
        any other, and is a 404 only when nothing is scripted."""
        with self._cond:
            keyed = self._keyed.get(rec.api_key) if rec.api_key is not None else None
            return self.handler is not None or bool(self._queue) or bool(keyed)

    def _resolve(self, rec: RecordedRequest) -> Reply | Error | Raw | Fault:
        try:
            reply: ReplyLike | None = None
            if self.handler is not None:
                reply = self.handler(rec)
            if reply is None:
                with self._cond:
                    keyed = self._keyed.get(rec.api_key) if rec.api_key is not None else None
                    if keyed:
                        reply = keyed.popleft()
                    elif self._queue:
                        reply = self._queue.popleft()
            if reply is None:
                default = self.default
                reply = default(rec) if callable(default) else default
            if isinstance(reply, str):
                reply = Reply(text=reply)
            if not isinstance(reply, Reply | Error | Raw | Fault):
                raise TypeError(f"not a reply: {reply!r}")
        except Exception as exc:
            log.exception("LLMTestServer: reply callable raised")
            with self._cond:
                self.errors.append(exc)
            msg = f"LLMTestServer: reply callable raised {exc!r}"
            return Error(status=500, message=msg, type="server_error")
        return reply
