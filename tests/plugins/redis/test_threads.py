"""One interface with the Redis backend shared by 16 threads making sync calls (a
``@llm_function``, or ``asyncio.run`` per call, as a web server's thread pool does): when
every call has returned, nothing is in flight, here, in Redis or for any other process, at
once and not after ``lease_ttl``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmplug import APIKeyPool, OpenAICompatible, llm_function
from llmplug.testing import LLMTestServer
from llmplug_redis import RedisKeyHealth

from ._redis import RedisServer

THREADS = 16
CALLS = 8  # per thread


def interface(server: LLMTestServer, url: str, prefix: str) -> OpenAICompatible:
    # Books of its own, as another process has: only Redis joins them.
    return OpenAICompatible(
        APIKeyPool(["sk-a", "sk-b", "sk-c"], "prov", strategy="least_loaded", shared=False),
        "m",
        server.base_url,
        retry_delay=0.001,
        rate_limit_capacity=1000,
        rate_limit_refill_rate=1000.0,
        total_timeout=30.0,
        # A generous timeout: 16 threads on a shared machine, and leases are under test here.
        rate_limit_backend={"kind": "redis", "url": url, "prefix": prefix, "timeout": 5.0},
    )


def leases(redis: RedisServer, prefix: str) -> int:
    """Leases in Redis, of every key and process under ``prefix``."""
    keys = redis.cli("--scan", "--pattern", f"{prefix}:*:leases:*").split()
    return sum(int(redis.cli("zcard", k)) for k in keys)


@pytest.mark.parametrize("how", ["llm_function", "asyncio.run"])
def test_sync_calls_from_16_threads_leave_nothing_in_flight_anywhere(
    redis_server: RedisServer, prefix: str, server: LLMTestServer, how: str
) -> None:
    llm = interface(server, redis_server.url, prefix)

    @llm_function(llm_interface=llm)
    def say(what: str) -> str:
        """Say it."""

    def one(text: str) -> str:
        if how == "llm_function":
            return say(text)
        return asyncio.run(llm.chat(text)).text

    def work(t: int) -> list[str]:
        return [one(f"{t}-{i}") for i in range(CALLS)]

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(work, range(THREADS)))
    assert all(len(a) == CALLS for a in answers)
    assert len(server.requests) == THREADS * CALLS
    # Here, as soon as the calls have returned: the pool's books and its view of the others.
    assert [row["in_flight"] for row in llm.key_pool.status()] == [0, 0, 0]
    # In Redis, once this process's changes have arrived (they are sent in the background).
    health = llm.key_pool.health
    assert isinstance(health, RedisKeyHealth)
    asyncio.run(health.flush())
    assert leases(redis_server, prefix) == 0
    # For another process: its first call sees nothing in flight but its own (ended) call,
    # and least_loaded has nothing to steer around.
    other = interface(server, redis_server.url, prefix)
    assert asyncio.run(other.chat("from elsewhere")).text == "echo: from elsewhere"
    assert [row["in_flight"] for row in other.key_pool.status()] == [0, 0, 0]
    assert [other.key_pool.in_flight(i) for i in range(3)] == [0, 0, 0]
