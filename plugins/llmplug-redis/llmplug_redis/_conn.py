"""The connection to Redis: one client per event loop (redis.asyncio connections belong to the
loop that opened them), scripts run by ``EVALSHA`` with the ``NOSCRIPT`` fallback, every call
bounded by a short timeout, and a short rest after a failure so that an outage costs each call
nothing (no connect attempt, no timeout) until it is time to try again."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from llmplug import LLMError, redact_url, redact_urls
from llmplug.wire import PerLoop

__all__ = ["Conn", "RedisUnavailableError", "Unavailable"]

_log = logging.getLogger("llmplug.redis")

Arg = str | int | float


class RedisUnavailableError(LLMError):
    """Redis did not answer within ``timeout`` (or refused), and ``on_unavailable`` is
    ``"fail"``."""


class Unavailable(Exception):
    """Internal: this call did not reach Redis (the caller decides: fail or go local)."""


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class _LoopClient:
    __slots__ = ("batch", "client")

    def __init__(self, client: Any) -> None:
        self.client = client
        #: Script calls made during this loop turn, sent together at its end.
        self.batch: list[tuple[_Script, Sequence[str], Sequence[Arg], asyncio.Future[Any]]] = []


#: Background sends (give-backs, reconciliations, health changes), by loop: held so they are
#: not collected before they run, and awaited by ``Conn.aclose()`` so nothing is cut short.
_background: dict[asyncio.AbstractEventLoop, set[asyncio.Task[Any]]] = {}


class Conn:
    """One Redis (or Cluster) reached from any threads and loops of this process."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retry_interval: float,
        cluster: bool,
        options: dict[str, Any],
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.cluster = cluster
        self.options = options
        # Closed on their own loops, never by the garbage collector (see llmplug.wire.PerLoop).
        self._clients: PerLoop[_LoopClient] = PerLoop(self, _close_client)
        self._down_until = 0.0
        self._down = False
        self._last_error = ""
        #: Called (synchronously) on the first success after an outage; held weakly, so
        #: interfaces made and dropped over a process's life do not pile up here.
        self._on_recover: list[weakref.WeakMethod[Callable[[], None]]] = []

    @property
    def down(self) -> bool:
        """Whether the last call failed (and Redis has not answered since)."""
        return self._down

    def resting(self) -> bool:
        return self._down and time.monotonic() < self._down_until

    def _new_client(self) -> Any:
        opts: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            **self.options,
        }
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **opts)
        import redis.asyncio

        return redis.asyncio.from_url(self.url, **opts)

    async def _client(self) -> Any:
        return (await self._clients.get(lambda: _LoopClient(self._new_client()))).client

    async def warm(self, connections: int = 1) -> None:
        """Open ``connections`` connections on this loop now rather than at the first calls."""
        client = await self._client()
        async with asyncio.timeout(self.timeout * 4):
            await asyncio.gather(*(client.ping() for _ in range(connections)))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background on the running loop (dropped if there is none: it is
        called from synchronous code, e.g. a reconciliation after a reply)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()
            return
        tasks = _background.setdefault(loop, set())
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(lambda t: _forget_task(loop, t))

    async def drain(self) -> None:
        """Wait for this loop's background sends."""
        loop = asyncio.get_running_loop()
        while tasks := _background.get(loop):
            await asyncio.gather(*tasks, return_exceptions=True)
        _background.pop(loop, None)

    async def aclose(self) -> None:
        """Finish this loop's background sends, then close its client (others close when their
        loops end)."""
        await self.drain()
        await self._clients.aclose()

    async def run(self, script: _Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run ``script`` once, within the timeout; raise :class:`Unavailable` otherwise."""
        if self.resting():
            raise Unavailable(
                f"{self._last_error} (not tried again for {self.retry_interval:g}s after a failure)"
            )
        from redis.exceptions import ConnectionError, RedisError

        client = None
        try:
            async with asyncio.timeout(self.timeout):
                client = await self._client()
                if self.cluster:
                    result = await _one(client, script, keys, args)
                else:
                    result = await self._batched(script, keys, args)
        except (TimeoutError, RedisError, OSError) as exc:
            closing = client is None or self._clients.current() is None
            # A client closed under us by its ending loop says nothing about Redis.
            if not closing and isinstance(exc, (TimeoutError, ConnectionError, OSError)):
                self._failed(exc)
            if isinstance(exc, TimeoutError):
                what = f"did not answer in time (timeout={self.timeout:g}s)"
            else:
                what = f"failed ({type(exc).__name__}: {exc})"
            # The whole text: redis-py's own message may quote the URL too.
            self._last_error = redact_urls(f"Redis at {self._where()} {what}")
            raise Unavailable(self._last_error) from None
        if self._down:
            self._recovered()
        return result

    def _batched(
        self, script: _Script, keys: Sequence[str], args: Sequence[Arg]
    ) -> asyncio.Future[Any]:
        """Join this loop turn's batch: every call made before the loop next looks is sent in
        one pipeline (one write, one read), which is what 64 concurrent callers need."""
        loop = asyncio.get_running_loop()
        lc = self._clients.current()
        assert lc is not None  # made by the _client() just awaited
        fut: asyncio.Future[Any] = loop.create_future()
        if not lc.batch:
            loop.call_soon(self._send_batch, lc)
        lc.batch.append((script, keys, args, fut))
        return fut

    def _send_batch(self, lc: _LoopClient) -> None:
        batch, lc.batch = lc.batch, []
        self.spawn(self._pipeline(lc.client, batch))

    async def _pipeline(
        self,
        client: Any,
        batch: list[tuple[_Script, Sequence[str], Sequence[Arg], asyncio.Future[Any]]],
    ) -> None:
        from redis.exceptions import NoScriptError

        try:
            async with asyncio.timeout(self.timeout):
                if len(batch) == 1:
                    script, keys, args, _ = batch[0]
                    results = [await _one(client, script, keys, args)]
                else:
                    pipe = client.pipeline(transaction=False)
                    for script, keys, args, _ in batch:
                        pipe.evalsha(script.sha, len(keys), *keys, *args)
                    results = await pipe.execute(raise_on_error=False)
                    for i, got in enumerate(results):
                        if isinstance(got, NoScriptError):
                            script, keys, args, _ = batch[i]
                            results[i] = await _one(client, script, keys, args)
        except BaseException as exc:
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception) else TimeoutError())
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, fut), got in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(got, Exception):
                fut.set_exception(got)
            else:
                fut.set_result(got)

    def _where(self) -> str:
        # The URL without its userinfo or a ?password= (llmplug.redact_url).
        return redact_url(self.url)

    def _failed(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_interval
        self._down = True

    def on_recover(self, method: Callable[[], None]) -> None:
        """Call the bound ``method`` on the first success after an outage."""
        self._on_recover = [w for w in self._on_recover if w() is not None]
        self._on_recover.append(weakref.WeakMethod(method))

    def _recovered(self) -> None:
        self._down = False
        _log.info("llmplug.redis: Redis at %s answers again", self._where())
        for ref in list(self._on_recover):
            cb = ref()
            if cb is not None:
                cb()


async def _close_client(lc: _LoopClient) -> None:
    await lc.client.aclose()


def _forget_task(loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]) -> None:
    # The table must not keep the loops of every asyncio.run() a sync caller made.
    tasks = _background.get(loop)
    if tasks is not None:
        tasks.discard(task)
        if not tasks:
            del _background[loop]


async def _one(client: Any, script: _Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
    from redis.exceptions import NoScriptError

    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        # A restarted or failed-over server lost its script cache: EVAL runs the script and
        # caches it again.
        return await client.eval(script.source, len(keys), *keys, *args)


def script(source: str) -> _Script:
    return _Script(source)
