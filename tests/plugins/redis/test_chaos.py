"""The chaos test with every interface on Redis (``rate_limit_backend``, half of them falling
back to a local bucket when Redis is unavailable, half failing), and one more rule: restart
Redis. Once every call ended, no lease may be left in Redis."""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from llmplug.testing import LLMTestServer
from tests.core._chaos import ChaosMachine
from tests.core.test_chaos import chaos_settings

from ._redis import RedisServer


def test_chaos_on_redis_keeps_every_invariant(
    server: LLMTestServer, redis_server: RedisServer, prefix: str
) -> None:
    class OnRedis(ChaosMachine):
        redis = redis_server

        def __init__(self) -> None:
            super().__init__(server, prefix)

    run_state_machine_as_test(OnRedis, settings=chaos_settings(6, 20))
