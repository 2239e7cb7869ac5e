"""Key rotation as users see it: which key each request carried."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import pytest

from llmplug import APIKeyPool, ConfigError, OpenAICompatible, RateLimitError
from llmplug.testing import Error, Fault, LLMTestServer, Reply

MakeLLM = Callable[..., OpenAICompatible]
KEYS = ("sk-one", "sk-two", "sk-three")


def spread(server: LLMTestServer) -> Counter[str | None]:
    return Counter(r.api_key for r in server.requests)


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
async def test_sequential_calls_spread_evenly(
    server: LLMTestServer, make_llm: MakeLLM, strategy: str
) -> None:
    llm = make_llm(keys=KEYS, strategy=strategy)
    for _ in range(30):
        await llm.chat("hi")
    assert spread(server) == dict.fromkeys(KEYS, 10)


@pytest.mark.parametrize("strategy", ["round_robin", "least_loaded"])
async def test_concurrent_calls_spread_evenly(
    server: LLMTestServer, make_llm: MakeLLM, strategy: str
) -> None:
    llm = make_llm(keys=KEYS, strategy=strategy)
    await asyncio.gather(*(llm.chat("hi") for _ in range(30)))
    assert spread(server) == dict.fromkeys(KEYS, 10)


async def test_round_robin_keeps_order(server: LLMTestServer, make_llm: MakeLLM) -> None:
    llm = make_llm(keys=KEYS)
    for _ in range(6):
        await llm.chat("hi")
    assert [r.api_key for r in server.requests] == list(KEYS) * 2


async def test_least_loaded_avoids_the_busy_key(server: LLMTestServer, make_llm: MakeLLM) -> None:
    # sk-one's first request stalls; while it is in flight, every new call avoids sk-one.
    server.push(Fault(kind="stall_after_headers", seconds=10), key="sk-one")
    llm = make_llm(keys=KEYS, strategy="least_loaded", timeout=30)

    async def consume() -> None:
        async for _ in llm.chat_stream("slow"):
            pass

    slow = asyncio.create_task(consume())
    await server.requests_arrived(1)
    assert llm.key_pool.status()[0]["in_flight"] == 1
    for _ in range(4):
        await llm.chat("hi")
    assert [r.api_key for r in server.requests[1:]] == ["sk-two", "sk-three"] * 2
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert [s["in_flight"] for s in llm.key_pool.status()] == [0, 0, 0]


async def test_pools_of_the_same_keys_rotate_and_cool_down_together(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    """As in SimpleLLMFunc: the provider's limits are the keys', so two interfaces on the same
    provider and keys share the keys' health and load."""
    a = make_llm(api_key_pool=APIKeyPool(list(KEYS), "same-id"))
    b = make_llm(api_key_pool=APIKeyPool(list(KEYS), "same-id"))
    await a.chat("hi")
    await b.chat("hi")
    assert [r.api_key for r in server.requests] == ["sk-one", "sk-two"]  # one rotation
    server.push(Error(status=429, message="slow down", headers={"retry-after": "30"}))
    await a.chat("hi")  # sk-three is rate limited: a moves on to another key
    assert [s["state"] for s in b.key_pool.status()] == ["ok", "ok", "cooling"]
    assert b.key_pool.status()[2]["cooldown_reason"] == "rate limited (429)"


async def test_a_pool_with_books_of_its_own(server: LLMTestServer, make_llm: MakeLLM) -> None:
    a = make_llm(api_key_pool=APIKeyPool(list(KEYS), "own-id", shared=False))
    b = make_llm(api_key_pool=APIKeyPool(list(KEYS), "own-id", shared=False))
    c = make_llm(api_key_pool=APIKeyPool(list(KEYS), "other-id"))
    for llm in (a, b, c):
        await llm.chat("hi")
    # Each pool starts its own rotation: every first call uses the first key.
    assert [r.api_key for r in server.requests] == ["sk-one", "sk-one", "sk-one"]
    assert a.key_pool.status()[0]["requests"] == 1


async def test_keys_cooling_down_are_waited_for(server: LLMTestServer, make_llm: MakeLLM) -> None:
    # Both keys get a 429 with a short retry-after: the call waits for the first to come back.
    server.push(Error(status=429, message="x", headers={"retry-after-ms": "150"}), key="sk-one")
    server.push(Error(status=429, message="x", headers={"retry-after-ms": "100"}), key="sk-two")
    llm = make_llm(keys=("sk-one", "sk-two"))
    assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.api_key for r in server.requests] == ["sk-one", "sk-two", "sk-two"]


async def test_waiting_longer_than_key_wait_timeout_raises_with_key_states(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=429, message="slow down", headers={"retry-after": "60"}))
    llm = make_llm(key_wait_timeout=1.0)
    # The call that met the 429 raises the server's own error, headers and all...
    with pytest.raises(RateLimitError, match="slow down") as first:
        await llm.chat("hi")
    assert first.value.status == 429
    assert first.value.headers is not None and first.value.headers["retry-after"] == "60"
    # ...and a later call does not even send: it says which keys are in what state.
    with pytest.raises(RateLimitError, match="every key is cooling down") as later:
        await llm.chat("hi")
    assert llm.key_pool.fingerprints[0] in str(later.value)
    assert len(server.requests) == 1


async def test_unknown_strategy_is_a_clear_error(make_llm: MakeLLM) -> None:
    with pytest.raises(ConfigError, match="no plugin provides the key strategy 'fastest'"):
        await make_llm(strategy="fastest").chat("hi")


async def test_leases_are_released_under_random_cancellation(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rng = random.Random(1234)
    server.default = Reply(text="a b c d e f", chunk_delay=0.0005)
    llm = make_llm(keys=KEYS, strategy="least_loaded")

    async def one(stream: bool) -> None:
        if stream:
            async for _ in llm.chat_stream("hi"):
                await asyncio.sleep(0)
        else:
            await llm.chat("hi")

    tasks: list[asyncio.Task[None]] = []
    for i in range(1000):
        tasks.append(asyncio.create_task(one(stream=i % 2 == 0)))
        if i % 50 == 49:
            # Cancel a random third of those still running, at whatever point they are.
            await asyncio.sleep(0)
            for t in rng.sample(tasks[-50:], 17):
                t.cancel()
            await asyncio.gather(*tasks[-50:], return_exceptions=True)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    assert 0 < cancelled < 1000
    assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
    assert [s["in_flight"] for s in llm.key_pool.status()] == [0, 0, 0]


def test_pool_never_shows_a_key() -> None:
    secret = "sk-live-0123456789abcdef"
    pool = APIKeyPool([secret], "p")
    for text in (repr(pool), str(pool), str(pool.status()), repr(pool.lease(0))):
        assert secret not in text and secret[-8:] not in text and secret[:8] not in text


@pytest.mark.parametrize("keys", [[], [""], [None]])
def test_bad_key_lists_are_rejected(keys: list[object]) -> None:
    with pytest.raises(ConfigError):
        APIKeyPool(keys, "p")  # type: ignore[arg-type]


async def test_a_key_back_from_a_short_rest_catches_up(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(keys=KEYS)
    pool = llm.key_pool
    pool.cool_down(0, 3600, "resting for the test")
    for _ in range(20):
        await llm.chat("hi")
    assert spread(server) == {"sk-two": 10, "sk-three": 10}
    pool.reset()
    server.clear()
    for _ in range(16):
        await llm.chat("hi")
    order = [r.api_key for r in server.requests]
    # The rested key takes the turns it missed, then all three go round again.
    assert order[:10] == ["sk-one"] * 10
    assert Counter(order[10:]) == dict.fromkeys(KEYS, 2)
