"""One interface shared by many threads and event loops at once, as a web server's thread pool
or sync ``@llm_function`` calls from a ThreadPoolExecutor use it: every call completes, the rate
limit holds across all of them, and no lease, client or task is left behind."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import pytest

from llmplug import (
    LLMInterface,
    ModelGroup,
    OpenAICompatible,
    Registry,
    hookimpl,
    llm_function,
)
from llmplug.testing import Error, LLMTestServer, RecordedRequest, Reply

MakeLLM = Callable[..., OpenAICompatible]

#: A hang guard, not a speed check. Calls also get a total_timeout below it, so a limiter or
#: client that hangs fails the calls instead of leaving threads no test can stop.
HANG = 60.0
CALL_LIMIT = 20.0


@pytest.fixture
def loop_errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """What asyncio reports from any loop of any thread: tasks destroyed while pending,
    exceptions nobody retrieved, "Event loop is closed"."""
    caplog.set_level(logging.WARNING, logger="asyncio")
    records: list[logging.LogRecord] = []
    yield records
    records.extend(r for r in caplog.records if r.name == "asyncio")


class Admissions:
    """A plugin of the kind a user writes (a ``wrapper=True`` hook): the moment the request
    limiter admits each request, from whichever thread or loop. Arrival times at the test
    server, which shares this process's GIL with two dozen client threads, lag admissions by
    up to a second under load: they cannot check the bound, these can."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    @hookimpl(wrapper=True)
    def acquire_rate(self, limiter: object, cost: float) -> Generator[None, Any, Any]:
        waiter = yield
        if cost != 1.0:
            return waiter

        async def admitted() -> None:
            await waiter
            with self._lock:
                self.times.append(time.monotonic())

        return admitted()

    def registry(self) -> Registry:
        registry = Registry()
        registry.register(self)
        return registry


def assert_within_budget(times: list[float], capacity: float, rate: float, n: int) -> None:
    """``n`` admissions, never more than ``capacity + rate * window`` in any window.

    A stamp is taken when the admitted task resumes, which two dozen threads contending for
    the GIL can delay by up to a few hundred milliseconds, so windows get that slack; the run
    as a whole must still take the time the budget needs. A limiter that is not shared by the
    threads and loops (one bucket each, say) breaks both bounds many times over. The exact
    per-window bound is checked without threads in the bucket's own tests."""
    assert len(times) == n
    times = sorted(times)
    slack = 0.25
    assert times[-1] - times[0] >= (n - capacity) / rate - slack
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            window = times[j] - first
            assert j - i + 1 <= capacity + rate * (window + slack), (i, j, window)


def settled(llm: LLMInterface) -> None:
    """Nothing leased and no HTTP client left open once every thread's loop ended."""
    assert [s["in_flight"] for s in llm.key_pool.status()] == [0] * len(llm.key_pool)
    assert llm._transport.open_clients == 0
    assert llm.get_rate_limit_status()["waiting"] == 0


def test_sync_llm_functions_on_four_threads_share_one_limiter(
    server: LLMTestServer, make_llm: MakeLLM, loop_errors: list[logging.LogRecord]
) -> None:
    stamps = Admissions()
    llm = make_llm(
        rate_limit_capacity=1,
        rate_limit_refill_rate=20.0,
        registry=stamps.registry(),
        total_timeout=CALL_LIMIT,
    )

    @llm_function(llm_interface=llm)
    def shout(word: str) -> str:
        """Say the word loudly."""

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(shout, f"w{i}") for i in range(40)]
        done, pending = wait(futures, timeout=HANG)
    assert not pending, f"{len(pending)} of 40 calls never finished"
    assert sorted(f.result() for f in done) == sorted(f"echo: word: w{i}" for i in range(40))
    assert_within_budget(stamps.times, 1, 20.0, n=40)
    settled(llm)
    assert loop_errors == []


def test_threads_and_loops_at_once_under_a_429_storm(
    server: LLMTestServer, make_llm: MakeLLM, loop_errors: list[logging.LogRecord]
) -> None:
    """16 threads x 50 sync calls and 8 concurrent asyncio.run loops of 40 calls, one
    interface, a tight rate limit, and one key of three answering 429 to a third of its
    requests."""
    capacity, rate = 5.0, 150.0
    stamps = Admissions()
    lock = threading.Lock()
    seen = Counter[str]()

    def handler(rec: RecordedRequest) -> Error | Reply | None:
        with lock:
            seen[rec.api_key or ""] += 1
            n = seen[rec.api_key or ""]
        if rec.api_key == "sk-storm" and n % 3 == 0:
            return Error(status=429, headers={"retry-after-ms": "20"})
        return None

    server.handler = handler
    llm = make_llm(
        keys=("sk-storm", "sk-b", "sk-c"),
        rate_limit_capacity=capacity,
        rate_limit_refill_rate=rate,
        max_retries=10,
        registry=stamps.registry(),
        total_timeout=CALL_LIMIT,
    )

    @llm_function(llm_interface=llm)
    def shout(word: str) -> str:
        """Say the word loudly."""

    async def a_loop(n: int) -> list[str]:
        replies = await asyncio.gather(*(llm.chat(f"loop{n}-{i}") for i in range(40)))
        await llm.aclose()
        return [r.text for r in replies]

    with ThreadPoolExecutor(24) as pool:
        sync: list[Future[Any]] = [pool.submit(shout, f"t{i}") for i in range(16 * 50)]
        loops: list[Future[Any]] = [pool.submit(asyncio.run, a_loop(n)) for n in range(8)]
        _, pending = wait([*sync, *loops], timeout=HANG)
    assert not pending, f"{len(pending)} of {len(sync) + len(loops)} jobs never finished"
    assert sorted(f.result() for f in sync) == sorted(f"echo: word: t{i}" for i in range(800))
    for n, f in enumerate(loops):
        assert f.result() == [f"echo: loop{n}-{i}" for i in range(40)]
    assert seen["sk-storm"] > 0 and seen["sk-b"] > 0 and seen["sk-c"] > 0
    assert_within_budget(stamps.times, capacity, rate, n=sum(seen.values()))
    settled(llm)
    assert loop_errors == []


def test_a_loop_ending_closes_its_own_client_only(
    server: LLMTestServer, make_llm: MakeLLM, loop_errors: list[logging.LogRecord]
) -> None:
    """A thread's aclose() or the end of its loop never closes another loop's client in use."""
    llm = make_llm(total_timeout=CALL_LIMIT)
    other_running = threading.Event()
    finish = threading.Event()

    async def long_user() -> list[str]:
        texts = []
        for i in range(20):
            texts.append((await llm.chat(f"long{i}")).text)
            other_running.set()
            if i == 10:
                await asyncio.to_thread(finish.wait, HANG)
        return texts

    async def closer() -> str:
        text = (await llm.chat("short")).text
        await llm.aclose()  # this loop's client only
        return text

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(asyncio.run, long_user())
        assert other_running.wait(HANG)
        assert pool.submit(asyncio.run, closer()).result(HANG) == "echo: short"
        # The short loop has ended too: its client is closed, the long one's is not.
        assert llm._transport.open_clients == 1
        finish.set()
        assert first.result(HANG) == [f"echo: long{i}" for i in range(20)]
    settled(llm)
    assert loop_errors == []


def test_a_group_shared_by_threads_keeps_its_books(
    server: LLMTestServer, make_llm: MakeLLM, loop_errors: list[logging.LogRecord]
) -> None:
    # Member b always fails, so its circuit opens, half-opens (a 20 ms cooldown) and opens
    # again all through the run, while 8 threads call the group, each on loops of its own.
    server.default = lambda req: (
        Error(status=503, message="down")
        if req.headers.get("authorization") == "Bearer sk-b"
        else Reply(text="ok")
    )
    a = make_llm(("sk-a",), model_name="a", max_retries=0, total_timeout=CALL_LIMIT)
    b = make_llm(("sk-b",), model_name="b", max_retries=0, total_timeout=CALL_LIMIT)
    group = ModelGroup([a, b], strategy="weighted", failure_threshold=2, cooldown=0.02)

    def calls(n: int) -> list[str]:
        return [asyncio.run(group.chat(f"q{i}")).text for i in range(n)]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(calls, 25) for _ in range(8)]
        done, pending = wait(futures, timeout=HANG)
    assert not pending, f"{len(pending)} of 8 threads never finished"
    # Every call was answered (by a, after b failed when b was tried first).
    assert [t for f in done for t in f.result()] == ["ok"] * 200
    sent = Counter(r.headers.get("authorization") for r in server.requests)
    # The group's books agree with what reached the server: nothing lost to a race.
    status = group.status()
    a_status, b_status = status["test/a"], status["test/b"]
    assert a_status["in_flight"] == b_status["in_flight"] == 0
    assert a_status["requests"] == sent["Bearer sk-a"] == 200
    assert b_status["requests"] == b_status["errors"] == sent["Bearer sk-b"] > 0
    assert a_status["errors"] == 0
    settled(a)
    settled(b)
    assert loop_errors == []


def test_sync_calls_from_16_threads_on_a_fresh_interface_build_one_tls_context(
    server: LLMTestServer, make_llm: MakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each thread's loop gets a client of its own, and every client of an interface shares
    one TLS context (loading the CA store costs ~50 ms of CPU, GIL held): 16 threads that
    arrive together must not each build one. Found by the combination matrix, where that
    burst alone spent a stalled call's whole 0.5 s total_timeout before it was sent."""
    import httpx2

    built: list[object] = []
    create = httpx2.create_ssl_context

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(object())
        return create(*args, **kwargs)

    monkeypatch.setattr(httpx2, "create_ssl_context", counted)
    llm = make_llm(total_timeout=CALL_LIMIT)
    start = threading.Barrier(16)

    def call(i: int) -> str:
        start.wait(HANG)
        return asyncio.run(llm.chat(f"t{i}")).text

    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(call, range(16), timeout=HANG))
    assert texts == [f"echo: t{i}" for i in range(16)]
    assert len(built) == 1
    settled(llm)
