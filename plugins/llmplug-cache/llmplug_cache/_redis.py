"""The Redis store: answers shared by every process that reaches the server, each under
``prefix + key`` with the entry's TTL (Redis's own ``maxmemory-policy`` bounds its size), and
the short lock of cross-process single flight under ``prefix + "lock:" + key``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from llmplug import ConfigError
from llmplug.wire import PerLoop

__all__ = ["RedisStore"]

_UNLOCK = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class RedisStore:
    kind = "redis"
    can_lock = True

    def __init__(self, url: str, prefix: str, timeout: float, where: str) -> None:
        try:
            import redis.asyncio  # noqa: F401
        except ImportError:
            raise ConfigError(
                'cache: kind "redis" needs the redis client: pip install "llmplug-cache[redis]"'
            ) from None
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.where = where
        # Closed on their own loops, never by the garbage collector (see llmplug.wire.PerLoop).
        self._clients: PerLoop[Any] = PerLoop(self, _close)
        #: Background writes (hit counters), held until done.
        self._tasks: set[asyncio.Task[None]] = set()

    async def _client(self) -> Any:
        import redis.asyncio

        return await self._clients.get(
            lambda: redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        )

    async def get(self, key: str) -> bytes | None:
        client = await self._client()
        async with asyncio.timeout(self.timeout):
            got: bytes | None = await client.get(self.prefix + key)
        return got

    async def put(self, key: str, body: bytes, ttl: float | None) -> None:
        client = await self._client()
        async with asyncio.timeout(self.timeout):
            pipe = client.pipeline(transaction=False)
            pipe.set(self.prefix + key, body, px=None if ttl is None else max(1, int(ttl * 1000)))
            pipe.incr(self.prefix + "stat:misses")
            await pipe.execute()

    def touch(self, key: str, saved: float | None) -> None:
        async def count() -> None:
            client = await self._client()
            async with asyncio.timeout(self.timeout):
                pipe = client.pipeline(transaction=False)
                pipe.incr(self.prefix + "stat:hits")
                if saved:
                    pipe.incrbyfloat(self.prefix + "stat:saved", saved)
                await pipe.execute()

        task = asyncio.get_running_loop().create_task(count())
        self._tasks.add(task)
        task.add_done_callback(self._counted)

    def _counted(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a lost hit count is not worth a warning

    async def lock(self, key: str, ttl: float) -> str | None:
        """A token when this process now makes the request for ``key``, None when another one
        is making it."""
        client = await self._client()
        token = os.urandom(8).hex()
        async with asyncio.timeout(self.timeout):
            got = await client.set(self.prefix + "lock:" + key, token, nx=True, px=int(ttl * 1000))
        return token if got else None

    async def locked(self, key: str) -> bool:
        client = await self._client()
        async with asyncio.timeout(self.timeout):
            return bool(await client.exists(self.prefix + "lock:" + key))

    async def unlock(self, key: str, token: str) -> None:
        client = await self._client()
        async with asyncio.timeout(self.timeout):
            await client.eval(_UNLOCK, 1, self.prefix + "lock:" + key, token)

    # -- the CLI ---------------------------------------------------------------------------------

    async def stats(self) -> dict[str, Any]:
        client = await self._client()
        entries = size = 0
        async for name in client.scan_iter(match=self.prefix + "*", count=1000):
            rest = name[len(self.prefix) :]
            if rest.startswith((b"stat:", b"lock:")):
                continue
            entries += 1
            size += await client.strlen(name)
        hits, misses, saved = await client.mget(
            self.prefix + "stat:hits", self.prefix + "stat:misses", self.prefix + "stat:saved"
        )
        h, m = int(hits or 0), int(misses or 0)
        return {
            "entries": entries,
            "bytes": size,
            "hits": h,
            "misses": m,
            "hit_rate": h / (h + m) if h + m else None,
            "saved": float(saved or 0),
        }

    async def clear(self) -> int:
        client = await self._client()
        n = 0
        async for name in client.scan_iter(match=self.prefix + "*", count=1000):
            n += int(await client.delete(name)) if not name.endswith(b"stat:") else 0
        return n

    async def aclose(self) -> None:
        await self._clients.aclose()


async def _close(client: Any) -> None:
    await client.aclose()
