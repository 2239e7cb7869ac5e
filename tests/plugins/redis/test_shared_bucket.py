"""The ``redis`` limiter: one budget for every process that names it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmplug import APIKeyPool, ConfigError, OpenAICompatible
from llmplug.testing import LLMTestServer
from llmplug_redis import RedisLimiter, backend

from ._redis import RedisServer
from ._worker import CAPACITY, RATE

WORKER = str(Path(__file__).with_name("_worker.py"))


def limiter_of(url: str, prefix: str, capacity: float, rate: float, **kw: object) -> RedisLimiter:
    pool = APIKeyPool(["sk-x"], "p", shared=False)
    spec = {"kind": "redis", "url": url, "prefix": prefix, "shared_health": False, **kw}
    b = backend(
        spec, pool=pool, model="m", capacity=capacity, refill_rate=rate, tokens_per_minute=None
    )
    return b.limiter


def test_four_processes_share_one_bucket(redis_server: RedisServer, prefix: str) -> None:
    window = 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "admit", redis_server.url, prefix, str(window)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    start = f"{time.time() + 0.2}\n".encode()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(start)
        p.stdin.close()
    counts = []
    for p in procs:
        assert p.stdout is not None
        counts.append(int(p.stdout.read()))
        p.stdout.close()
        assert p.wait(timeout=60) == 0
    allowed = CAPACITY + RATE * window
    assert sum(counts) <= allowed
    assert sum(counts) >= 0.97 * allowed
    assert all(c > 0 for c in counts)  # every process got its turns, none was starved


async def test_a_cancelled_waiter_gives_its_turn_back(
    redis_server: RedisServer, prefix: str
) -> None:
    limiter = limiter_of(redis_server.url, prefix, 1, 1.0)  # one token a second
    await limiter.acquire(1.0)  # the bucket is empty now
    waiter = asyncio.create_task(limiter.acquire(1.0))  # its turn: in 1 s
    await asyncio.sleep(0.05)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    await asyncio.gather(*list(asyncio.all_tasks() - {asyncio.current_task()}))
    await limiter.flush()  # the give-back goes out on the Redis sender's thread
    # The cancelled turn went back: a newcomer waits its own second, not two.
    key = limiter.key
    tat = int(redis_server.cli("get", key).strip())
    sec, usec = redis_server.cli("time").split()
    now = int(sec) * 1_000_000 + int(usec)
    assert tat - now < 1_500_000
    await limiter.conn.aclose()


async def test_keys_expire_when_the_bucket_is_idle(redis_server: RedisServer, prefix: str) -> None:
    limiter = limiter_of(redis_server.url, prefix, 5, 100.0)
    await limiter.acquire(1.0)
    ttl = int(redis_server.cli("pttl", limiter.key))
    assert ttl <= 20  # 1 token at 100/s: full again in 10 ms, and forgotten then (-2: gone)
    await limiter.conn.aclose()


async def test_scripts_survive_a_flushed_script_cache(
    redis_server: RedisServer, prefix: str
) -> None:
    limiter = limiter_of(redis_server.url, prefix, 5, 100.0)
    await limiter.acquire(1.0)
    redis_server.cli("script", "flush")  # as a restart or a failover does: NOSCRIPT next
    await limiter.acquire(1.0)
    redis_server.cli("script", "flush")
    await asyncio.gather(*(limiter.acquire(1.0) for _ in range(3)))  # one pipeline
    assert limiter.key.startswith(f"{prefix}:{{p}}:rate:")
    await limiter.conn.aclose()


async def test_provider_json_names_the_backend(
    redis_server: RedisServer, prefix: str, server: LLMTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_REDIS_URL", redis_server.url)
    data = {
        "prov": [
            {
                "model_name": "m",
                "api_keys": ["sk-a"],
                "base_url": server.base_url,
                "tokens_per_minute": 100_000,
                "rate_limit_backend": {
                    "kind": "redis",
                    "url": "${TEST_REDIS_URL}",
                    "prefix": prefix,
                    "on_unavailable": "local",
                },
            }
        ]
    }
    llm = OpenAICompatible.load_from_dict(data)["prov"]["m"]
    assert isinstance(llm.rate_limiter, RedisLimiter)
    assert isinstance(llm.token_limiter, RedisLimiter)
    assert (await llm.chat("hi")).text == "echo: hi"
    assert llm.key_pool.health is not None
    # The token budget was charged in Redis, and reconciled after the reply.
    assert redis_server.cli("exists", llm.token_limiter.key).strip() in ("0", "1")
    await llm.aclose()
    await llm.rate_limiter.conn.aclose()


def test_a_bad_backend_is_a_config_error(server: LLMTestServer) -> None:
    pool = APIKeyPool(["sk-a"], "p", shared=False)
    with pytest.raises(ConfigError, match="on_unavailable"):
        OpenAICompatible(
            pool, "m", server.base_url,
            rate_limit_backend={"kind": "redis", "url": "redis://x", "on_unavailable": "maybe"},
        )  # fmt: skip
    with pytest.raises(ConfigError, match="no installed plugin provides 'nope'"):
        OpenAICompatible(pool, "m", server.base_url, rate_limit_backend={"kind": "nope"})
