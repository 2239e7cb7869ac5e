"""Default key rotation strategies: ``round_robin`` and ``least_loaded``.

Both choose among the pool's healthy keys (not cooling down, not taken out of rotation); the
pipeline waits for a key to come back before asking when none is healthy."""

from __future__ import annotations

import math
import time
from typing import Any

from llmplug import APIKeyPool, Call, ConfigError, KeyLease, hookimpl

__all__ = ["check_key_strategy", "select_key"]


def _turn(pool: APIKeyPool) -> int:
    turn: int = pool.strategy_state.get("turn", 0)
    pool.strategy_state["turn"] = turn + 1
    return turn


def _candidates(pool: APIKeyPool) -> list[int]:
    return pool.healthy() or list(range(len(pool)))


#: Seconds over which a key's past requests fade from its share (an exponential decay): a
#: key back from a short rest catches up with the others; after a long rest, what it missed
#: has faded and it simply rejoins the turn, instead of taking a burst of catch-up requests.
MEMORY_SECONDS = 10.0


def round_robin(pool: APIKeyPool) -> KeyLease:
    """Each key in turn, so every key carries the same share of the recent requests. A key
    that rested (cooling down after a 429, say) takes extra turns to catch up."""
    n = len(pool)
    if n == 1:
        return pool.lease(0)
    state = pool.strategy_state
    recent: list[float] = state.setdefault("recent", [0.0] * n)
    last: list[int] = state.setdefault("last_pick", [-1] * n)
    now = time.monotonic()
    fade = math.exp((state.get("at", now) - now) / MEMORY_SECONDS)
    state["at"] = now
    if fade < 1.0:
        for i in range(n):
            recent[i] *= fade
    turn = _turn(pool)
    # Round to absorb float noise, so keys with equal shares tie and take turns.
    best = min(_candidates(pool), key=lambda i: (round(recent[i], 6), last[i]))
    recent[best] += 1.0
    last[best] = turn
    return pool.lease(best)


def least_loaded(pool: APIKeyPool) -> KeyLease:
    """The healthy key with the fewest requests in flight; among equals, the one picked least
    recently, so idle keys still take turns."""
    last: list[int] = pool.strategy_state.setdefault("last_pick", [-1] * len(pool))
    turn = _turn(pool)
    best = min(_candidates(pool), key=lambda i: (pool.in_flight(i), last[i]))
    last[best] = turn
    return pool.lease(best)


STRATEGIES = {"round_robin": round_robin, "least_loaded": least_loaded}
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"key_strategy": list(STRATEGIES)}


@hookimpl(trylast=True)
def select_key(strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
    pick = STRATEGIES.get(strategy)
    return pick(pool) if pick is not None else None


@hookimpl(trylast=True)
def check_key_strategy(strategy: str, settings: dict[str, Any], pool: APIKeyPool) -> bool | None:
    if strategy not in STRATEGIES:
        return None
    if settings:
        first = sorted(settings)[0]
        raise ConfigError(f"{strategy} takes no settings, got {first!r}", field=first)
    return True
