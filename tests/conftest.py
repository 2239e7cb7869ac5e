"""Fixtures shared by the whole suite: one real test server, and interfaces pointed at it."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from llmplug import APIKeyPool, LLMInterface, OpenAICompatible
from llmplug.testing import LLMTestServer, RecordedRequest

MakeLLM = Callable[..., OpenAICompatible]

# ``pytest --hypothesis-profile=soak tests/core/test_chaos.py tests/plugins/redis/test_chaos.py``:
# the chaos tests for about ten minutes (their default budget is a few seconds). Other
# hypothesis tests run under it too, with as many examples.
settings.register_profile(
    "soak",
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="session")
def _session_server() -> Iterator[LLMTestServer]:
    with LLMTestServer() as server:
        yield server


@pytest.fixture
def server(_session_server: LLMTestServer) -> Iterator[LLMTestServer]:
    """The shared server, with empty queues and records for this test."""
    _session_server.clear()
    yield _session_server
    _session_server.release_stalls()
    _session_server.clear()


@pytest.fixture
def arrivals(server: LLMTestServer) -> list[float]:
    """When each request of this test reached the server (``time.monotonic()``), for tests of
    how long a client waits between attempts. It takes the server's ``handler``."""
    times: list[float] = []

    def stamp(_: RecordedRequest) -> None:
        times.append(time.monotonic())

    server.handler = stamp
    return times


@pytest.fixture
async def make_llm(server: LLMTestServer) -> AsyncIterator[MakeLLM]:
    """Build interfaces on the test server: fast retries and a limiter that does not pace,
    unless a test asks otherwise (``interface=OpenAIResponsesCompatible`` for the Responses
    wire). All are closed after the test."""
    made: list[LLMInterface] = []

    def make(keys: tuple[str, ...] = ("sk-test-1",), **kw: Any) -> Any:
        strategy = kw.pop("strategy", "round_robin")
        cls: type[LLMInterface] = kw.pop("interface", OpenAICompatible)
        opts: dict[str, Any] = {
            "model_name": "test-model",
            "base_url": server.base_url,
            "max_retries": 3,
            "retry_delay": 0.001,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000.0,
        }
        opts.update(kw)
        # Books of its own: tests reuse key names, and one test's cooldowns are not the next's.
        pool = opts.pop("api_key_pool", None) or APIKeyPool(
            list(keys), "test", strategy=strategy, shared=False
        )
        llm = cls(api_key_pool=pool, **opts)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


@pytest.fixture(autouse=True)
def _cache_written_after() -> Iterator[None]:
    """Each test's cached answers are written when it ends. An answer kept without its key
    (llmplug-cache) has the key made by its store's writer thread, through its interface's
    registry, which may be the process's: during a later test, that test's plugins would see
    the build."""
    yield
    cache = sys.modules.get("llmplug_cache._cache")  # (only if a test used the cache)
    if cache is not None:
        for shared in list(cache._shared.values()):
            flush = getattr(shared.store, "flush", None)
            if flush is not None:
                flush()
