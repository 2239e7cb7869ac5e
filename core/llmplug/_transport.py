"""Sending requests over httpx2 (or a user's httpx / httpx2 ``AsyncClient``).

httpx2 is imported on first use, not with ``import llmplug``. The interface owns one pooled client
per event loop (a client's connections belong to the loop that opened them) and never closes it
under a request that still uses it."""

from __future__ import annotations

import asyncio
from typing import Any

from ._call import HTTPRequest

__all__ = ["DEFAULT_TIMEOUT", "Transport"]

#: Reasoning models think for minutes before the first byte; 30 s read timeouts cut them off.
DEFAULT_TIMEOUT: dict[str, float | None] = {
    "connect": 10.0,
    "read": 600.0,
    "write": 60.0,
    "pool": 600.0,
}


class Transport:
    """One interface's HTTP client and the exception types it raises."""

    __slots__ = (
        "_client",
        "_closer",
        "_closing",
        "_errors",
        "_in_use",
        "_loop",
        "_owned",
        "_timeout",
    )

    def __init__(self, client: Any | None = None, timeout: Any = None) -> None:
        self._client = client
        self._owned = client is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout = timeout
        self._in_use = 0
        self._closing = False
        self._closer: asyncio.Task[None] | None = None
        self._errors: tuple[type[Exception], type[Exception]] | None = None

    def _error_types(self) -> tuple[type[Exception], type[Exception]]:
        # Looked up on first need, so that neither httpx2 nor httpx is imported before then.
        if self._errors is None:
            package = "httpx2" if self._owned else type(self._client).__module__.partition(".")[0]
            if package == "httpx":
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

    def client(self) -> Any:
        """The client for the running loop, made on first use."""
        if not self._owned:
            return self._client
        loop = asyncio.get_running_loop()
        if self._client is None or loop is not self._loop:
            import httpx2

            t = self._timeout
            timeout = httpx2.Timeout(**DEFAULT_TIMEOUT) if t is None else httpx2.Timeout(t)
            # A client left on another (finished) loop cannot be closed from here; dropping it
            # is all that is possible, and its sockets die with that loop.
            self._client = httpx2.AsyncClient(
                timeout=timeout,
                limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
                follow_redirects=False,
            )
            self._loop = loop
            self._closing = False
        return self._client

    async def send(self, request: HTTPRequest, timeout: Any = None) -> Any:  # noqa: ASYNC109
        """Send and return the response with its body not yet read (the caller must close it)."""
        client = self.client()
        extra = {} if timeout is None else {"timeout": timeout}
        req = client.build_request(
            request.method, request.url, headers=request.headers, content=request.content, **extra
        )
        self._in_use += 1
        try:
            return await client.send(req, stream=True)
        except BaseException:
            self._done()
            raise

    def response_closed(self) -> None:
        """Called once per response returned by :meth:`send`, after it was closed."""
        self._done()

    def _done(self) -> None:
        self._in_use -= 1
        if self._closing and self._in_use == 0 and self._client is not None:
            client, self._client = self._client, None
            # Defer the close to a task (the last user is inside a finally block), and keep a
            # reference so the task is not garbage-collected before it runs.
            self._closer = asyncio.get_running_loop().create_task(client.aclose())

    async def aclose(self) -> None:
        """Close an owned client now, or as soon as the requests still using it are done."""
        if not self._owned or self._client is None:
            return
        if self._in_use:
            self._closing = True
            return
        client, self._client = self._client, None
        await client.aclose()
