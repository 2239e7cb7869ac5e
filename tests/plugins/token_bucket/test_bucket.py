"""The token bucket: pacing, fairness, cancellation, and the interface's rate-limit methods."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable

import pytest

from llmplug import ConfigError, OpenAICompatible, TokenBucket
from llmplug.testing import LLMTestServer, RecordedRequest

MakeLLM = Callable[..., OpenAICompatible]


def within_budget(times: list[float], costs: list[float], capacity: float, rate: float) -> bool:
    """Every window [t_i, t_j] admitted at most capacity + rate * (t_j - t_i) tokens."""
    for i in range(len(times)):
        total = 0.0
        for j in range(i, len(times)):
            total += costs[j]
            if total > capacity + rate * (times[j] - times[i]) + 1e-6:
                return False
    return True


async def test_a_burst_is_paced_to_capacity_plus_refill() -> None:
    bucket = TokenBucket(capacity=3, refill_rate=40.0)
    times: list[float] = []

    async def one() -> None:
        await bucket.acquire(1)
        times.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(12)))
    assert len(times) == 12
    assert within_budget(sorted(times), [1.0] * 12, 3, 40.0)
    assert bucket.waiting == 0


async def test_waiters_are_served_first_come_first_served() -> None:
    bucket = TokenBucket(capacity=4, refill_rate=50.0)
    await bucket.acquire(4)  # empty it
    order: list[str] = []

    async def want(name: str, cost: float) -> None:
        await bucket.acquire(cost)
        order.append(name)

    tasks = [asyncio.create_task(want("big", 4))]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(want(f"small{i}", 1)) for i in range(3)]
    await asyncio.gather(*tasks)
    # The big request came first and is not starved by the small ones behind it.
    assert order == ["big", "small0", "small1", "small2"]


async def test_cost_above_capacity_is_rejected() -> None:
    bucket = TokenBucket(capacity=2, refill_rate=1.0)
    with pytest.raises(ConfigError, match="can never pass a bucket of capacity 2"):
        await bucket.acquire(3)


@pytest.mark.parametrize(("capacity", "rate"), [(0, 1.0), (5, 0.0), (-1, 1.0), (5, -2.0)])
def test_bad_settings_are_rejected(capacity: float, rate: float) -> None:
    with pytest.raises(ConfigError):
        TokenBucket(capacity, rate)
    with pytest.raises(ConfigError, match="slack must be >= 0 seconds"):
        TokenBucket(1, 1.0, slack=-0.1)


async def test_slack_admits_close_turns_together_and_keeps_the_budget() -> None:
    # 20 ms a token: without slack, ten queued requests would go out one every 20 ms. With
    # 100 ms of slack they go out five at a time (a bucketful less a margin for a late timer),
    # in order, within the budget.
    bucket = TokenBucket(capacity=6, refill_rate=50.0, slack=0.1)
    await bucket.acquire(6)  # empty it
    admitted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        await bucket.acquire(1)
        admitted.append((i, time.monotonic()))

    await asyncio.gather(*(one(i) for i in range(10)))
    assert [i for i, _ in admitted] == list(range(10))
    times = [t for _, t in admitted]
    assert within_budget(times, [1.0] * 10, 6, 50.0)
    # Admissions in one wake-up resume in one loop iteration; wake-ups are >= 80 ms apart.
    wakeups = 1 + sum(1 for a, b in itertools.pairwise(times) if b - a > 0.04)
    assert wakeups == 2


async def test_a_cancelled_waiter_costs_nothing_and_does_not_block_others() -> None:
    bucket = TokenBucket(capacity=2, refill_rate=20.0)
    await bucket.acquire(2)
    first = asyncio.create_task(bucket.acquire(2))
    second = asyncio.create_task(bucket.acquire(1))
    await asyncio.sleep(0)
    assert bucket.waiting == 2
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await second  # served without waiting for the cancelled request's tokens
    assert bucket.waiting == 0


async def test_reset_serves_waiters_at_once() -> None:
    bucket = TokenBucket(capacity=1, refill_rate=0.001)  # would take 1000 s to refill
    await bucket.acquire(1)
    waiter = asyncio.create_task(bucket.acquire(1))
    await asyncio.sleep(0)
    assert bucket.waiting == 1
    bucket.reset()
    await asyncio.wait_for(waiter, 5)


async def test_interface_paces_real_requests(server: LLMTestServer, make_llm: MakeLLM) -> None:
    arrivals: list[float] = []

    def stamp(_: RecordedRequest) -> None:
        arrivals.append(time.monotonic())

    server.handler = stamp
    llm = make_llm(rate_limit_capacity=2, rate_limit_refill_rate=25.0)
    await asyncio.gather(*(llm.chat("hi") for _ in range(8)))
    assert len(arrivals) == 8
    # Arrivals lag admissions by varying amounts (the first ones wait for new connections), so
    # two tokens of slack; without the limiter all 8 would arrive within a millisecond.
    assert within_budget(sorted(arrivals), [1.0] * 8, 2 + 2, 25.0)
    assert not within_budget(sorted(arrivals), [1.0] * 8, 8 - 1, 0.0)


async def test_rate_limit_status_and_reset(make_llm: MakeLLM) -> None:
    llm = make_llm(rate_limit_capacity=20, rate_limit_refill_rate=0.001)
    assert llm.get_rate_limit_status() == {
        "available": 20,
        "capacity": 20,
        "refill_rate": 0.001,
        "waiting": 0,
    }
    for _ in range(5):
        await llm.chat("hi")
    assert llm.get_rate_limit_status()["available"] == 15
    llm.reset_rate_limit()
    assert llm.get_rate_limit_status()["available"] == 20


async def test_two_interfaces_never_share_a_bucket(make_llm: MakeLLM) -> None:
    a = make_llm(rate_limit_capacity=3, rate_limit_refill_rate=0.001)
    b = make_llm(rate_limit_capacity=3, rate_limit_refill_rate=0.001)
    for _ in range(3):
        await a.chat("hi")
    assert a.get_rate_limit_status()["available"] == 0
    assert b.get_rate_limit_status()["available"] == 3


@pytest.mark.parametrize("charge", [-1e30, -float("inf"), float("nan"), float("inf")])
async def test_a_wrong_count_neither_stops_the_budget_nor_refills_it(charge: float) -> None:
    # A reply claiming 10**30 tokens (or a count that is not a number) is reconciled with
    # adjust(): the budget owes at most one capacity, so the next request still goes, after a
    # bounded wait (100 ms here), and nothing that is not a number fills the bucket.
    bucket = TokenBucket(capacity=10, refill_rate=200.0)
    await bucket.acquire(10)
    bucket.adjust(charge)
    assert bucket.status()["available"] == 0
    await asyncio.wait_for(bucket.acquire(1), 60)  # a hang guard: forever before
