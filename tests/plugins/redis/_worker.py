"""Worker processes for the Redis tests.

``admit URL PREFIX WINDOW``: connect, say "ready", read the start instant, then acquire from
the shared bucket with 16 concurrent callers for WINDOW seconds and print how many were
admitted. ``hold URL PREFIX N TTL``: lease key 0 N times through the shared health, print
"held" and wait to be killed. ``chat URL PREFIX BASE_URL``: one call on keys sk-a and sk-b of
provider "prov", print its text."""

from __future__ import annotations

import asyncio
import sys
import time

from llmplug import APIKeyPool
from llmplug_redis import RedisBackend, backend

CAPACITY = 20.0
RATE = 200.0
KEYS = ["sk-one", "sk-two"]


def make(url: str, prefix: str, lease_ttl: float = 30.0) -> tuple[APIKeyPool, RedisBackend]:
    pool = APIKeyPool(KEYS, "shared", shared=False)
    b = backend(
        {"kind": "redis", "url": url, "prefix": prefix, "timeout": 2.0, "lease_ttl": lease_ttl},
        pool=pool,
        model="m",
        capacity=CAPACITY,
        refill_rate=RATE,
        tokens_per_minute=None,
    )
    return pool, b


async def admit(url: str, prefix: str, window: float) -> int:
    _, b = make(url, prefix)
    limiter = b.limiter
    admitted = 0

    async def caller() -> None:
        # Counted by the turn Redis gave (not by when this loop woke up): a loaded machine's
        # late wake-ups are the scheduler's, not the limiter's.
        nonlocal admitted
        while True:
            wait = await limiter.reserve(1.0)
            if time.time() + wait >= end:
                return
            admitted += 1
            await asyncio.sleep(wait)

    await limiter.conn.warm(16)
    print("ready", flush=True)
    # The parent answers with the start instant once every worker is ready.
    start = float(await asyncio.to_thread(sys.stdin.readline))
    end = start + window
    await asyncio.sleep(max(0.0, start - time.time()))
    tasks = [asyncio.create_task(caller()) for _ in range(16)]
    await asyncio.gather(*tasks)
    await limiter.conn.aclose()
    return admitted


async def hold(url: str, prefix: str, n: int, ttl: float) -> None:
    pool, b = make(url, prefix, ttl)
    leases = [pool.lease(0) for _ in range(n)]
    assert b.health is not None
    await b.health.flush()
    print("held", len(leases), flush=True)
    await asyncio.Event().wait()


async def chat(url: str, prefix: str, base_url: str) -> None:
    from llmplug import OpenAICompatible

    llm = OpenAICompatible(
        APIKeyPool(["sk-a", "sk-b"], "prov", shared=False),
        "m",
        base_url,
        retry_delay=0.001,
        rate_limit_backend={"kind": "redis", "url": url, "prefix": prefix},
    )
    print((await llm.chat("from another process")).text, flush=True)
    await llm.aclose()


if __name__ == "__main__":
    cmd, url, prefix, *rest = sys.argv[1:]
    if cmd == "admit":
        print(asyncio.run(admit(url, prefix, float(rest[0]))), flush=True)
    elif cmd == "chat":
        asyncio.run(chat(url, prefix, rest[0]))
    else:
        asyncio.run(hold(url, prefix, int(rest[0]), float(rest[1])))
