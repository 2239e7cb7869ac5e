"""The combination matrix, local-bucket rows: every wire, streamed or not (each cell runs both
and compares them), one interface or a group, async or sync from 16 threads, under 429s, 5xx,
in-stream errors and stalls. The Redis rows are in tests/plugins/redis/test_matrix.py."""

from __future__ import annotations

import itertools

import pytest

from llmplug.testing import LLMTestServer

from ._matrix import MODES, TARGETS, WIRES, Cell, run_cell

CELLS = [Cell(w, t, m) for w, t, m in itertools.product(WIRES, TARGETS, MODES)]


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"{c.wire}-{c.target}-{c.mode}")
async def test_a_cell_keeps_every_invariant(cell: Cell, server: LLMTestServer) -> None:
    await run_cell(cell, server)
