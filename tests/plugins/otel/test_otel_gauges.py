"""The pool, the limiters, the group circuits and the shared backend as observable gauges:
what a dashboard shows about why calls queue."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import llmplug_otel
from llmplug import APIKeyPool, ModelGroup, OpenAICompatible, Registry, fingerprint
from llmplug.testing import Error, LLMTestServer, Reply
from tests.conftest import MakeLLM
from tests.plugins.otel._sdk import points


def value(name: str, **match: Any) -> Any:
    (p,) = points(name, **match)
    return p.value


async def test_the_limiters_available_and_waiting(server: LLMTestServer, make_llm: MakeLLM) -> None:
    model = "m-gauge-limiter"
    llm = make_llm(
        model_name=model,
        rate_limit_capacity=1,
        rate_limit_refill_rate=0.001,  # one request, then none for a long while
        tokens_per_minute=60_000,
        registry=Registry(),
    )
    llmplug_otel.watch(llm)
    await llm.chat("first")
    waiting = [asyncio.create_task(llm.chat(f"queued {i}")) for i in range(2)]
    # No event says a caller has queued: yield to the two tasks until both wait (no timer).
    while llm.get_rate_limit_status()["waiting"] < 2:  # noqa: ASYNC110
        await asyncio.sleep(0)
    who = {"gen_ai.request.model": model, "gen_ai.provider.name": "test"}
    requests = {**who, "llmplug.limiter.budget": "requests"}
    assert value("llmplug.limiter.waiting", **requests) == 2
    assert value("llmplug.limiter.available", **requests) == 0
    tokens = {**who, "llmplug.limiter.budget": "tokens"}
    assert value("llmplug.limiter.waiting", **tokens) == 0
    assert 0 < value("llmplug.limiter.available", **tokens) <= 60_000
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    assert value("llmplug.limiter.waiting", **requests) == 0


async def test_keys_by_state_and_in_flight_per_key(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    model = "m-gauge-keys"
    llm = make_llm(keys=("sk-g-a", "sk-g-b", "sk-g-c"), model_name=model, registry=Registry())
    llmplug_otel.watch(llm)
    server.push(Error(status=401, message="bad key"), key="sk-g-a")
    server.push(Error(status=429, message="slow", headers={"retry-after": "60"}), key="sk-g-b")
    server.push(Reply(text="ok"), key="sk-g-c")
    await llm.chat("hi")
    states = {
        p.attributes["llmplug.key.state"]: p.value
        for p in points("llmplug.keys", **{"gen_ai.request.model": model})
    }
    assert states == {"ok": 1, "cooling": 1, "disabled": 1}
    # A call held by the server: its key has one request in flight.
    server.push(Reply(text="slow", delay=0.5), key="sk-g-c")
    task = asyncio.create_task(llm.chat("hold"))
    await server.requests_arrived(4)
    flying = {
        p.attributes["llmplug.key"]: p.value
        for p in points("llmplug.key.in_flight", **{"gen_ai.request.model": model})
    }
    assert flying == {fingerprint("sk-g-a"): 0, fingerprint("sk-g-b"): 0, fingerprint("sk-g-c"): 1}
    await task
    after = {"gen_ai.request.model": model, "llmplug.key": fingerprint("sk-g-c")}
    assert value("llmplug.key.in_flight", **after) == 0


async def test_group_members_by_circuit_state(server: LLMTestServer) -> None:
    registry = Registry()
    bad_pool = APIKeyPool(["sk-g-bad"], "test", shared=False)
    good_pool = APIKeyPool(["sk-g-good"], "test", shared=False)
    bad = OpenAICompatible(bad_pool, "m-bad", server.base_url, max_retries=0, registry=registry)
    good = OpenAICompatible(good_pool, "m-good", server.base_url, registry=registry)
    name = f"g-{uuid.uuid4().hex[:6]}"
    async with ModelGroup(
        [bad], fallbacks=[good], name=name, failure_threshold=1, registry=registry
    ) as group:
        llmplug_otel.watch(group)
        server.push(Error(status=500, message="down"), key="sk-g-bad")
        assert (await group.chat("hi")).text == "echo: hi"
        states = {
            p.attributes["llmplug.member.state"]: p.value
            for p in points("llmplug.group.members", **{"llmplug.group": name})
        }
        assert states == {"open": 1, "closed": 1, "half_open": 0}
        # A watched group's members are watched too.
        assert value(
            "llmplug.keys", **{"gen_ai.request.model": "m-good", "llmplug.key.state": "ok"}
        )


async def test_the_redis_backend_reachability(server: LLMTestServer) -> None:
    from tests.plugins.redis._redis import RedisServer

    redis = RedisServer().start()
    model = f"m-redis-{uuid.uuid4().hex[:6]}"
    try:
        llm = OpenAICompatible(
            APIKeyPool(["sk-r-a"], "prov", shared=False),
            model,
            server.base_url,
            rate_limit_capacity=1000,
            rate_limit_refill_rate=1000.0,
            rate_limit_backend={
                "kind": "redis",
                "url": redis.url,
                "prefix": model,
                "on_unavailable": "local",
                "retry_interval": 0.05,
            },
            registry=Registry(),
        )
        llmplug_otel.watch(llm)
        await llm.chat("hi")
        up = {
            p.attributes["llmplug.backend.role"]: p.value
            for p in points("llmplug.backend.up", **{"gen_ai.request.model": model})
        }
        assert up == {"requests": 1, "keys": 1}
        redis.stop()
        assert (await llm.chat("during")).text == "echo: during"  # the local share
        up = {
            p.attributes["llmplug.backend.role"]: p.value
            for p in points("llmplug.backend.up", **{"gen_ai.request.model": model})
        }
        assert up["requests"] == 0
        await llm.aclose()
        await llm.rate_limiter.conn.aclose()  # type: ignore[attr-defined]
    finally:
        redis.close()
