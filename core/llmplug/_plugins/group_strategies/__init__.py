"""The default group strategies: which member of a :class:`llmplug.ModelGroup` takes a call.

``weighted`` (smooth weighted round-robin: deterministic, each member in proportion to its
weight, never twice in a row when weights are equal), ``least_loaded`` (fewest calls in
flight, then fewest so far), ``lowest_latency`` (lowest recent latency; a member without one yet
goes first, so each is measured) and ``cost`` (cheapest input plus output price; unpriced
members last). Each chooses among ``call.candidates``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmplug._engine._hookspecs import hookimpl

if TYPE_CHECKING:
    from llmplug._interfaces._group import GroupCall, Member, ModelGroup

__all__ = ["STRATEGIES", "select_member"]

STRATEGIES = ("weighted", "least_loaded", "lowest_latency", "cost")
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"group_strategy": list(STRATEGIES)}
_INF = float("inf")


def _weighted(candidates: list[Member]) -> Member:
    total = 0.0
    best = candidates[0]
    for m in candidates:
        m.current += m.weight
        total += m.weight
        if m.current > best.current:
            best = m
    best.current -= total
    return best


def _least_loaded(candidates: list[Member]) -> Member:
    return min(candidates, key=lambda m: (m.in_flight, m.requests))


def _lowest_latency(candidates: list[Member]) -> Member:
    return min(candidates, key=lambda m: (-1.0 if m.latency is None else m.latency, m.in_flight))


def _cheapest(candidates: list[Member]) -> Member:
    return min(candidates, key=lambda m: (_INF if m.cost is None else m.cost, m.in_flight))


_CHOOSE = {
    "weighted": _weighted,
    "least_loaded": _least_loaded,
    "lowest_latency": _lowest_latency,
    "cost": _cheapest,
}


@hookimpl
def select_member(strategy: str, group: ModelGroup, call: GroupCall) -> Member | None:
    choose = _CHOOSE.get(strategy)
    if choose is None:
        return None
    return choose(call.candidates)
