"""Sending requests over httpx2 (or a user's httpx / httpx2 ``AsyncClient``).

httpx2 is imported on first use, not with ``import llmplug``. An interface may be used from many
threads and event loops at once (a web server's thread pool, ``asyncio.run`` per sync call), and
a client's connections belong to the loop that opened them, so the interface owns one pooled
client *per event loop*: made on that loop's first request, closed when that loop ends (or by
``aclose()`` on that loop), and never closed under a request that still uses it."""

from __future__ import annotations

import threading
from typing import Any

from llmplug._vocab._call import HTTPRequest
from llmplug._wire._per_loop import PerLoop

__all__ = ["DEFAULT_TIMEOUT", "Transport"]

_MAX_URLS = 64
_ssl_lock = threading.Lock()

#: Reasoning models think for minutes before the first byte; 30 s read timeouts cut them off.
DEFAULT_TIMEOUT: dict[str, float | None] = {
    "connect": 10.0,
    "read": 600.0,
    "write": 60.0,
    "pool": 600.0,
}


class _LoopClient:
    """One loop's client and how many of its responses are still open."""

    __slots__ = ("client", "closing", "in_use")

    def __init__(self, client: Any) -> None:
        self.client = client
        self.in_use = 0
        self.closing = False


async def _close_client(lc: _LoopClient) -> None:
    await lc.client.aclose()


def _client_library(client: Any) -> str:
    """``httpx`` or ``httpx2``: the library a client (or the class it derives from) is of."""
    for cls in type(client).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in ("httpx", "httpx2"):
            return top
    return "httpx2"


class Transport:
    """One interface's HTTP clients (one per event loop) and the exception types they raise."""

    __slots__ = ("__weakref__", "_clients", "_errors", "_ssl", "_timeout", "_urls", "_user_client")

    def __init__(self, client: Any | None = None, timeout: Any = None) -> None:
        self._user_client = client
        self._timeout = timeout
        self._clients: PerLoop[_LoopClient] = PerLoop(self, _close_client)
        self._errors: tuple[type[Exception], type[Exception]] | None = None
        self._ssl: Any = None
        # url string -> the client library's parsed URL (immutable), see send().
        self._urls: dict[str, Any] = {}

    def _error_types(self) -> tuple[type[Exception], type[Exception]]:
        # Looked up on first need, so that neither httpx2 nor httpx is imported before then;
        # by the client's base classes, so a subclass of httpx's client maps its errors too.
        if self._errors is None:
            user = self._user_client
            if user is not None and _client_library(user) == "httpx":
                import httpx as mod  # type: ignore[import-not-found,unused-ignore]
            else:
                import httpx2 as mod  # type: ignore[no-redef,unused-ignore]
            self._errors = (mod.TimeoutException, mod.RequestError)
        return self._errors

    @property
    def timeout_error(self) -> type[Exception]:
        """The client library's timeout exception."""
        return self._error_types()[0]

    @property
    def request_error(self) -> type[Exception]:
        """The client library's base exception for requests that got no response."""
        return self._error_types()[1]

    @property
    def open_clients(self) -> int:
        """Owned clients not yet closed (one per event loop that made requests)."""
        return len(self._clients)

    def _new_client(self) -> _LoopClient:
        import httpx2

        if self._ssl is None:
            # Loading the CA store costs about 20 ms of CPU; a sync call makes a client for its
            # own loop each time, so every client of this interface shares one context (made
            # once, however many threads make their first client at the same moment).
            with _ssl_lock:
                if self._ssl is None:
                    self._ssl = httpx2.create_ssl_context()
        t = self._timeout
        return _LoopClient(
            httpx2.AsyncClient(
                verify=self._ssl,
                timeout=httpx2.Timeout(**DEFAULT_TIMEOUT) if t is None else httpx2.Timeout(t),
                limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
                follow_redirects=False,
            )
        )

    async def _loop_client(self) -> _LoopClient:
        lc = await self._clients.get(self._new_client)
        lc.closing = False  # used again: a close deferred by aclose() is called off
        return lc

    def client(self) -> Any:
        """The user's client, or this loop's own client if one was made (None before)."""
        if self._user_client is not None:
            return self._user_client
        lc = self._clients.current()
        return lc.client if lc is not None else None

    async def send(self, request: HTTPRequest, timeout: Any = None) -> Any:  # noqa: ASYNC109
        """Send and return the response with its body not yet read. The caller must close it
        and then call :meth:`response_closed`, on the same loop."""
        lc = None if self._user_client is not None else await self._loop_client()
        client: Any = self._user_client if lc is None else lc.client
        extra = {} if timeout is None else {"timeout": timeout}
        # Parsing the URL string is a good part of building a request, and an interface sends
        # to the same one or two URLs: pass the client library's URL object for it instead
        # (immutable; the client treats it exactly as the string).
        url = self._urls.get(request.url, request.url)
        req = client.build_request(
            request.method, url, headers=request.headers, content=request.content, **extra
        )
        if url is request.url:
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()  # URLs that vary per call: this cache is no help then
            self._urls[request.url] = req.url
        if lc is not None:
            lc.in_use += 1
        try:
            return await client.send(req, stream=True)
        except BaseException:
            self.response_closed()
            raise

    def response_closed(self) -> None:
        """Called once per response returned by :meth:`send`, after it was closed."""
        if self._user_client is not None:
            return
        lc = self._clients.current()
        if lc is None:
            return
        lc.in_use -= 1
        if lc.closing and lc.in_use == 0:
            # The last user is inside a finally block: close from a task of this loop.
            self._clients.close_soon()

    async def aclose(self) -> None:
        """Close this event loop's client now, or as soon as the requests still using it are
        done. Clients of other loops are theirs: each closes when its loop ends. A user's
        client is never closed by llmplug."""
        lc = self._clients.current()
        if lc is None:
            return
        if lc.in_use:
            lc.closing = True
            return
        await self._clients.aclose()
