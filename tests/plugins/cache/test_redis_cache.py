"""The Redis store on the suite's real redis-server: shared answers, single flight across
processes, and an outage that costs the calls nothing but one warning."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from llmplug.testing import Fault, LLMTestServer
from tests.conftest import MakeLLM
from tests.plugins.redis._redis import RedisServer, free_port

from .test_processes import WORKER, run_together
from .test_sqlite_failures import warnings_of


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def spec(redis_server: RedisServer) -> dict[str, Any]:
    return {"kind": "redis", "url": redis_server.url, "prefix": f"t{uuid.uuid4().hex[:8]}:"}


async def test_answers_are_shared_through_redis_with_their_ttl(
    server: LLMTestServer, make_llm: MakeLLM, spec: dict[str, Any], redis_server: RedisServer
) -> None:
    llm = make_llm(cache={**spec, "ttl": 600})
    first = await llm.chat("q")
    again = await llm.chat("q")
    assert again.cached and again.text == first.text and len(server.requests) == 1
    client = redis.Redis.from_url(redis_server.url)
    (name,) = [k for k in client.scan_iter(match=spec["prefix"] + "*") if b"stat:" not in k]
    assert 0 < client.ttl(name) <= 600
    body = client.get(name)
    assert isinstance(body, bytes) and b"sk-test" not in body
    client.close()


def test_processes_share_answers_through_redis(server: LLMTestServer, spec: dict[str, Any]) -> None:
    questions = [f"q{i}" for i in range(10)]
    run_together(server.base_url, spec, [questions])
    (answers,) = run_together(server.base_url, spec, [questions])
    assert all(hit for _, hit in answers)
    assert len(server.requests) == 10


def test_identical_calls_on_several_processes_reach_the_server_once(
    server: LLMTestServer, spec: dict[str, Any], redis_server: RedisServer
) -> None:
    server.push(Fault("stall_after_headers"))
    client = redis.Redis.from_url(redis_server.url)
    before = len(client.client_list())
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "ask", server.base_url, json.dumps(spec), "the same question"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
    server.wait_for_requests(1)
    # Every process has asked Redis (so it waits on the lock) before the one request ends.
    while len(client.client_list()) < before + 3:
        client.ping()  # an event to wait on: each round trip is one turn
    server.release_stalls()
    hits = []
    for p in procs:
        assert p.stdout is not None
        hits += [hit for _, hit in json.loads(p.stdout.read())]
        p.stdout.close()
        assert p.wait(timeout=60) == 0
    assert len(server.requests) == 1
    assert sorted(hits) == [False, True, True]
    client.close()


async def test_redis_down_means_uncached_calls_and_one_warning(
    server: LLMTestServer, make_llm: MakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://cache:hunter2@127.0.0.1:{free_port()}/0"
    llm = make_llm(cache={"kind": "redis", "url": url})
    for _ in range(3):
        got = await llm.chat("q")
        assert got.text == "echo: q" and not got.cached
    (warning,) = warnings_of(caplog)
    assert "127.0.0.1" in warning and "hunter2" not in caplog.text
    assert "hunter2" not in repr(llm.call_wrapper)


async def test_redis_stopping_mid_run(
    server: LLMTestServer, make_llm: MakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    own = RedisServer().start()
    try:
        llm = make_llm(cache={"kind": "redis", "url": own.url, "timeout": 0.5})
        await llm.chat("q")
        assert (await llm.chat("q")).cached
        await asyncio.to_thread(own.stop)
        for _ in range(3):
            assert (await llm.chat("q")).text == "echo: q"
        assert len(warnings_of(caplog)) == 1
    finally:
        own.close()
