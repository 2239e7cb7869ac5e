"""The combination matrix, Redis rows: the cells of tests/core/test_matrix.py with every
interface on ``rate_limit_backend = {"kind": "redis"}`` (shared limiter and key health), and
one more invariant: once the calls ended, no lease is left in Redis, and the shared view this
process reads back holds no phantom in-flight request."""

from __future__ import annotations

import itertools

import pytest

from llmplug.testing import LLMTestServer
from llmplug_redis import RedisKeyHealth, RedisLimiter
from tests.core._matrix import MODES, TARGETS, WIRES, Cell, Round, run_cell

from ._redis import RedisServer

CELLS = [(w, t, m) for w, t, m in itertools.product(WIRES, TARGETS, MODES)]


@pytest.mark.parametrize(("wire", "target", "mode"), CELLS, ids=lambda v: v)
async def test_a_redis_cell_keeps_every_invariant(
    wire: str,
    target: str,
    mode: str,
    server: LLMTestServer,
    redis_server: RedisServer,
    prefix: str,
) -> None:
    limiters: list[RedisLimiter] = []

    async def settle(r: Round) -> list[str]:
        bad = []
        for llm, _, model in r.interfaces:
            limiter = llm.rate_limiter
            assert isinstance(limiter, RedisLimiter)
            limiters.append(limiter)
            health = llm.key_pool.health
            assert isinstance(health, RedisKeyHealth)
            # One more admission: it sends what is still to send and reads the shared view
            # back, as the next call would.
            await limiter.acquire(1.0)
            await limiter.conn.drain()
            leases = [int(redis_server.cli("zcard", key)) for key in health.lease_keys]
            if leases != [0, 0]:
                bad.append(
                    f"{'stream' if r.stream else 'chat()'} {model}: leases in Redis {leases}"
                )
        return bad

    cell = Cell(wire, target, mode, backend={"kind": "redis", "url": redis_server.url})
    try:
        await run_cell(cell, server, prefix=prefix, settle=settle)
    finally:
        if limiters:
            await limiters[0].conn.aclose()
