"""The combination matrix, local-bucket rows: every wire, streamed or not (each cell runs both
and compares them), one interface or a group, async or sync from 16 threads, under 429s, 5xx,
in-stream errors and stalls. The Redis rows are in tests/plugins/redis/test_matrix.py."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest

from llmplug import APIKeyPool, LLMInterface, ModelGroup
from llmplug.testing import Fault, LLMTestServer

from ._matrix import MODES, SLACK, STALL_S, TARGETS, WIRES, Cell, call_once, run_cell

CELLS = [Cell(w, t, m) for w, t, m in itertools.product(WIRES, TARGETS, MODES)]


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.wire}-{c.target}-{c.mode}")
async def test_a_cell_keeps_every_invariant(cell: Cell, server: LLMTestServer) -> None:
    await run_cell(cell, server)


@pytest.mark.parametrize("target", TARGETS)
async def test_the_interfaces_total_timeout_bounds_a_stalled_call_on_every_wire(
    server: LLMTestServer, target: str
) -> None:
    """The matrix's stalled call gives its total_timeout per call; here it comes from the
    interfaces, as it does by default (1800 s): every wire, streamed or not, one request, the
    call's timeout error. A group's members share that deadline: the call is not handed to the
    next member once its time is up."""
    stall = Fault("stall_after_headers", seconds=30.0)
    server.handler = lambda rec: stall if ":stall:" in rec.last_user_text else None
    made: list[LLMInterface] = []

    def interface(wire: str, name: str) -> LLMInterface:
        llm = LLMInterface(
            APIKeyPool([f"sk-{name}"], f"p-{name}", shared=False),
            name,
            server.base_url,
            max_retries=0,
            wire=WIRES[wire],
            total_timeout=STALL_S,
            rate_limit_capacity=10_000,
            rate_limit_refill_rate=10_000.0,
        )
        made.append(llm)
        return llm

    def build(wire: str, stream: bool) -> Any:
        tag = f"{wire}-{'s' if stream else 'c'}"
        if target == "one":
            return interface(wire, tag)
        return ModelGroup([interface(wire, f"{tag}-a"), interface(wire, f"{tag}-b")], name=tag)

    cases = [(w, s) for w in WIRES for s in (True, False)]
    targets = [build(w, s) for w, s in cases]
    for llm in made:  # warm, as in the matrix: the deadline is about the stall
        await llm.chat("warm")
    outcomes = await asyncio.gather(
        *(call_once(t, f"{w}:stall:{s}", s) for t, (w, s) in zip(targets, cases, strict=True))
    )
    sent = Counter(rec.last_user_text for rec in server.requests)
    got = {
        (w, s): (o.kind, sent[o.prompt], o.elapsed <= STALL_S + SLACK)
        for (w, s), o in zip(cases, outcomes, strict=True)
    }
    assert got == dict.fromkeys(cases, ("APITimeoutError", 1, True))
    for llm in made:
        assert [row["in_flight"] for row in llm.key_pool.status()] == [0]
        await llm.aclose()
