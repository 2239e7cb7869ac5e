"""Hostile numbers with llmplug-redis: a reply or a 429 whose headers say ``inf``, ``1e999``,
NaN or garbage is answered (no raw ``OverflowError``), the key rests at most a day here and in
every other process, and no lease is left in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmplug import OpenAICompatible
from llmplug.testing import Error, LLMTestServer, Reply
from llmplug_redis import RedisKeyHealth
from tests.hostile import EXAMPLES, HEADER_NUMBER, Interfaces, bounded

from ._redis import RedisServer


@pytest.fixture(scope="module")
def llms(_session_server: LLMTestServer) -> Iterator[Interfaces]:
    made = Interfaces(_session_server)
    yield made
    made.close()


def leases(redis: RedisServer, prefix: str) -> int:
    """Leases in Redis, of every key and process under ``prefix``."""
    keys = redis.cli("--scan", "--pattern", f"{prefix}:*:leases:*").split()
    return sum(int(redis.cli("zcard", k)) for k in keys)


@EXAMPLES
@given(
    where=st.sampled_from(["reply", "429"]),
    header=st.sampled_from(["x-ratelimit-reset-requests", "retry-after", "retry-after-ms"]),
    value=HEADER_NUMBER,
)
def test_any_rate_limit_header_is_answered_and_leaks_no_lease(
    llms: Interfaces, redis_server: RedisServer, where: str, header: str, value: str
) -> None:
    server = llms.server
    server.clear()
    redis_server.cli("flushall")  # every example starts from an empty Redis
    prefix = "hostile"
    backend: dict[str, Any] = {"kind": "redis", "url": redis_server.url, "prefix": prefix}
    headers = {"x-ratelimit-remaining-requests": "0", header: value}
    if where == "reply":
        server.push(Reply(text="first", headers=headers))
    else:
        server.push(Error(status=429, message="slow down", headers=headers), Reply(text="first"))
    server.push(Reply(text="second"))
    llm = llms.get(["sk-a", "sk-b"], rate_limit_backend=backend)
    answers = [llms.runner.run(llm.chat(t)).text for t in ("one", "two")]
    assert answers == ["first", "second"]
    bounded(llm.key_pool.status())
    health = llm.key_pool.health
    assert isinstance(health, RedisKeyHealth)
    llms.runner.run(health.flush())
    assert leases(redis_server, prefix) == 0
    # Another process sees the same bounded rest (and nothing in flight) after a call.
    other = llms.get(["sk-a", "sk-b"], OpenAICompatible, "other", rate_limit_backend=backend)
    assert llms.runner.run(other.chat("three")).text == "echo: three"
    bounded(other.key_pool.status())
