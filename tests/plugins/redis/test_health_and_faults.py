"""Shared key health, and what happens when Redis is slow or gone."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from llmplug import APIKeyPool, OpenAICompatible
from llmplug.testing import Error, LLMTestServer
from llmplug_redis import RedisKeyHealth, RedisLimiter, RedisUnavailableError

from ._redis import RedisServer

WORKER = str(Path(__file__).with_name("_worker.py"))


def rl(llm: OpenAICompatible) -> RedisLimiter:
    """The interface's request limiter, the Redis one."""
    assert isinstance(llm.rate_limiter, RedisLimiter)
    return llm.rate_limiter


async def publish(llm: OpenAICompatible) -> None:
    """Send this interface's key-health changes now (they go with its next admission anyway)."""
    health = llm.key_pool.health
    assert isinstance(health, RedisKeyHealth)
    await health.flush()


def interface(server: LLMTestServer, url: str, prefix: str, **backend: object) -> OpenAICompatible:
    # Books of its own, as another process has: only Redis joins them.
    pool = APIKeyPool(["sk-a", "sk-b"], "prov", shared=False)
    return OpenAICompatible(
        pool,
        "m",
        server.base_url,
        retry_delay=0.001,
        rate_limit_capacity=1000,
        rate_limit_refill_rate=1000.0,
        rate_limit_backend={"kind": "redis", "url": url, "prefix": prefix, **backend},
    )


async def test_a_429_seen_by_one_worker_cools_the_key_for_the_others(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    server.push(Error(status=429, message="slow down", headers={"retry-after": "30"}), key="sk-a")
    other = await asyncio.create_subprocess_exec(
        sys.executable, WORKER, "chat", redis_server.url, prefix, server.base_url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await other.communicate()
    assert out.strip() == b"echo: from another process"  # 429 on sk-a, then sk-b
    here = interface(server, redis_server.url, prefix)
    for _ in range(3):
        await here.chat("hi")
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b", "sk-b", "sk-b", "sk-b"]
    a = here.key_pool.status()[0]
    assert a["state"] == "cooling" and a["cooldown_reason"] == "rate limited (429)"
    assert redis_server.cli("hgetall", f"{prefix}:{{prov}}:health").count("key-") == 1
    assert "sk-a" not in redis_server.cli("keys", "*")  # fingerprints, never keys
    await here.aclose()
    await rl(here).conn.aclose()


async def test_least_loaded_sees_the_other_process_leases(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    one = interface(server, redis_server.url, prefix)
    two = interface(server, redis_server.url, prefix)
    held = [one.key_pool.lease(0) for _ in range(3)]
    await publish(one)
    await rl(two).acquire(1.0)
    assert two.key_pool.in_flight(0) == 3 and two.key_pool.status()[0]["in_flight"] == 3
    for lease in held:
        lease.release()
    await publish(one)
    await rl(two).acquire(1.0)
    assert two.key_pool.in_flight(0) == 0
    await rl(one).conn.aclose()


async def test_a_killed_process_leaks_no_in_flight_count(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, WORKER, "hold", redis_server.url, prefix, "2", "1.0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).startswith(b"held")
    pool = APIKeyPool(["sk-one", "sk-two"], "shared", shared=False)
    from llmplug_redis import backend

    b = backend(
        {"kind": "redis", "url": redis_server.url, "prefix": prefix},
        pool=pool, model="m", capacity=100, refill_rate=100.0, tokens_per_minute=None,
    )  # fmt: skip
    await b.limiter.acquire(1.0)
    assert pool.in_flight(0) == 2
    proc.kill()
    await proc.wait()
    await asyncio.sleep(1.1)  # the lease TTL itself is what is under test
    await b.limiter.acquire(1.0)
    assert pool.in_flight(0) == 0
    await b.limiter.conn.aclose()


@pytest.mark.parametrize("mode", ["fail", "local"])
async def test_a_slow_redis_takes_the_timeout_path(
    redis_server: RedisServer, prefix: str, server: LLMTestServer, mode: str
) -> None:
    llm = interface(server, redis_server.url, prefix, timeout=0.1, on_unavailable=mode)
    await llm.chat("warm")  # connected
    sleeper = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", str(redis_server.port), "debug", "sleep", "1",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.2)  # DEBUG SLEEP has begun
    if mode == "fail":
        with pytest.raises(RedisUnavailableError, match="did not answer in time"):
            await llm.chat("hi")
    else:
        assert (await llm.chat("hi")).text == "echo: hi"  # the local share
    await sleeper.wait()
    await llm.aclose()
    await rl(llm).conn.aclose()


async def test_redis_restarted_mid_run_rebuilds_the_shared_view(
    prefix: str, server: LLMTestServer
) -> None:
    redis = RedisServer().start()
    try:
        one = interface(server, redis.url, prefix, on_unavailable="local", retry_interval=0.05)
        two = interface(server, redis.url, prefix, on_unavailable="fail", retry_interval=0.05)
        server.push(Error(status=429, message="x", headers={"retry-after": "60"}), key="sk-a")
        await one.chat("hi")
        redis.stop()
        assert (await one.chat("during")).text == "echo: during"  # local bucket
        with pytest.raises(RedisUnavailableError):
            await two.chat("during")
        redis.start()  # empty: the shared view is gone
        await asyncio.sleep(0.06)  # past retry_interval
        await one.chat("after")  # reconnects, and republishes its view
        await publish(one)
        await asyncio.sleep(0.06)
        await two.chat("after")
        assert two.key_pool.status()[0]["state"] == "cooling"
        assert server.requests[-1].api_key == "sk-b"
        for llm in (one, two):
            await llm.aclose()
        await rl(one).conn.aclose()
    finally:
        redis.close()


async def test_the_token_budget_is_reconciled_with_the_real_usage(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    from llmplug.testing import Reply

    server.push(
        Reply(
            text="ok", usage={"prompt_tokens": 300, "completion_tokens": 200, "total_tokens": 500}
        )
    )
    llm = OpenAICompatible(
        APIKeyPool(["sk-a"], "prov", shared=False), "m", server.base_url, tokens_per_minute=6000,
        rate_limit_backend={"kind": "redis", "url": redis_server.url, "prefix": prefix},
    )  # fmt: skip
    await llm.chat("hi", max_tokens=4000)  # estimated at 4,000 and more before it is sent
    await llm.token_limiter.flush()  # the reconciliation is sent in the background
    tat = int(redis_server.cli("get", llm.token_limiter.key))
    sec, usec = redis_server.cli("time").split()
    owed = (tat - (int(sec) * 1_000_000 + int(usec))) / 10_000  # 100 tokens/s: 10 ms each
    assert 450 < owed <= 500  # the real 500 (less what refilled since), not the estimate
    await llm.aclose()
    await rl(llm).conn.aclose()


async def test_local_fallback_warns_once_per_outage(
    prefix: str, server: LLMTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    redis = RedisServer().start()
    url = redis.url
    redis.close()  # nobody listens there now
    llm = interface(server, url, prefix, on_unavailable="local", timeout=0.2, retry_interval=60)
    for _ in range(3):
        assert (await llm.chat("hi")).text == "echo: hi"
    warned = [r for r in caplog.records if "using a local bucket" in r.getMessage()]
    assert len(warned) == 1
    assert "capacity 1000" in warned[0].getMessage()
    await llm.aclose()
    await rl(llm).conn.aclose()


async def test_a_password_protected_redis(server: LLMTestServer, prefix: str) -> None:
    redis = RedisServer("--requirepass", "s3cret-pw").start()
    try:
        good = f"redis://:s3cret-pw@127.0.0.1:{redis.port}/0"
        llm = interface(server, good, prefix)
        assert (await llm.chat("hi")).text == "echo: hi"
        await llm.aclose()
        await rl(llm).conn.aclose()
        bad = f"redis://:wrong-pw@127.0.0.1:{redis.port}/0"
        llm = interface(server, bad, prefix)
        with pytest.raises(RedisUnavailableError) as got:
            await llm.chat("hi")
        assert "wrong-pw" not in str(got.value)  # the URL is shown without its password
        await rl(llm).conn.aclose()
    finally:
        redis.close()


async def test_rediss_with_a_password(server: LLMTestServer, prefix: str) -> None:
    redis = RedisServer("--requirepass", "tls-pw", tls=True).start()
    try:
        url = f"rediss://:tls-pw@127.0.0.1:{redis.port}/0?ssl_ca_certs={redis.ca}"
        llm = interface(server, url, prefix)
        assert (await llm.chat("hi")).text == "echo: hi"
        assert rl(llm).status()["redis_available"]
        await llm.aclose()
        await rl(llm).conn.aclose()
    finally:
        redis.close()


def test_each_event_loop_closes_its_own_redis_client(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    import gc

    def clients() -> int:
        return int(redis_server.cli("info", "clients").split("connected_clients:")[1].split()[0])

    llm = interface(server, redis_server.url, prefix)
    # The first call starts this process's sender (one thread, one connection for the
    # process's life, whatever the loops): counted from there.
    assert asyncio.run(llm.chat("first")).text == "echo: first"
    before = clients()
    for i in range(3):  # as a sync caller does: a loop per call
        assert asyncio.run(llm.chat(f"call {i}")).text == f"echo: call {i}"
    gc.collect()  # an unclosed connection would warn here (warnings are errors in this suite)
    assert clients() <= before


async def test_a_big_request_passes_a_local_share_smaller_than_itself(
    prefix: str, server: LLMTestServer
) -> None:
    redis = RedisServer().start()
    url = redis.url
    redis.close()  # nobody listens there now
    llm = OpenAICompatible(
        APIKeyPool(["sk-a"], "prov", shared=False), "m", server.base_url,
        tokens_per_minute=6000,
        rate_limit_backend={"kind": "redis", "url": url, "prefix": prefix, "timeout": 0.2,
                            "on_unavailable": "local", "expected_processes": 8},
    )  # fmt: skip
    # Estimated above 4,000 tokens; this process's share of the budget is 750.
    assert (await llm.chat("hi", max_tokens=4000)).text == "echo: hi"
    await llm.aclose()
    await rl(llm).conn.aclose()


def test_a_dropped_interface_never_affects_a_live_one(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    import gc

    async def main() -> list[str]:
        a = interface(server, redis_server.url, prefix)
        await asyncio.gather(*(a.chat(f"a{i}") for i in range(30)))
        del a  # never closed
        gc.collect()
        b = interface(server, redis_server.url, prefix)
        async with asyncio.timeout(10):
            replies = await asyncio.gather(*(b.chat(f"b{i}") for i in range(30)))
        await b.aclose()
        return [r.text for r in replies]

    assert asyncio.run(main()) == [f"echo: b{i}" for i in range(30)]


async def test_a_release_lost_while_redis_was_out_of_reach_leaves_no_phantom_lease(
    redis_server: RedisServer, prefix: str, server: LLMTestServer
) -> None:
    """Redis kept the lease through a short outage (a slow command, a network blip), but the
    release sent meanwhile was lost: once Redis answers again, this process's leases there
    are exactly the ones it holds, not a phantom in flight for every other process until its
    lease_ttl. (Found by the chaos test, which restarts Redis under calls in flight.)"""
    from llmplug.testing import Fault

    llm = OpenAICompatible(
        APIKeyPool(["sk-a"], "prov", shared=False),
        "m",
        server.base_url,
        rate_limit_capacity=1000,
        rate_limit_refill_rate=1000.0,
        rate_limit_backend={
            "kind": "redis",
            "url": redis_server.url,
            "prefix": prefix,
            "timeout": 0.1,
            "retry_interval": 0.5,
            "on_unavailable": "local",
        },
    )
    health = llm.key_pool.health
    assert isinstance(health, RedisKeyHealth)
    leases = health.lease_keys[0]
    await llm.chat("warm")  # connected
    server.push(Fault("stall_after_headers"))
    held = asyncio.create_task(llm.chat("held"))
    await server.requests_arrived(2)
    await publish(llm)
    assert redis_server.cli("zcard", leases).strip() == "1"
    sleeper = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", str(redis_server.port), "debug", "sleep", "0.3",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await asyncio.sleep(0.05)  # DEBUG SLEEP has begun
    assert (await llm.chat("during")).text == "echo: during"  # timed out: local, Redis rests
    await sleeper.wait()
    server.release_stalls()
    assert (await held).text == "a b c"  # its release goes while the connection rests
    await publish(llm)
    await asyncio.sleep(0.55)  # past retry_interval: the rest itself is what is under test
    await llm.chat("after")  # Redis answers again
    await publish(llm)
    assert redis_server.cli("zcard", leases).strip() == "0"
    await llm.aclose()
    await rl(llm).conn.aclose()
