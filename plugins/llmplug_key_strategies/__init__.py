"""Default key rotation strategies: ``round_robin`` and ``least_loaded``.

Both choose among the pool's healthy keys (not cooling down, not taken out of rotation); the
pipeline waits for a key to come back before asking when none is healthy."""

from __future__ import annotations

from llmplug import APIKeyPool, Call, KeyLease, hookimpl

__all__ = ["select_key"]


def _turn(pool: APIKeyPool) -> int:
    turn: int = pool.strategy_state.get("turn", 0)
    pool.strategy_state["turn"] = turn + 1
    return turn


def _candidates(pool: APIKeyPool) -> list[int]:
    return pool.healthy() or list(range(len(pool)))


def round_robin(pool: APIKeyPool) -> KeyLease:
    """Each key in turn; a key that is out of rotation is skipped, keeping the order."""
    n = len(pool)
    turn = _turn(pool)
    if n == 1:
        return pool.lease(0)
    healthy = set(_candidates(pool))
    for step in range(n):
        i = (turn + step) % n
        if i in healthy:
            if step:
                # Continue after the key we used so the skipped one does not shift the cycle.
                pool.strategy_state["turn"] = turn + step + 1
            return pool.lease(i)
    raise AssertionError("unreachable: _candidates is never empty")


def least_loaded(pool: APIKeyPool) -> KeyLease:
    """The healthy key with the fewest requests in flight; among equals, the one picked least
    recently, so idle keys still take turns."""
    last: list[int] = pool.strategy_state.setdefault("last_pick", [-1] * len(pool))
    turn = _turn(pool)
    best = min(_candidates(pool), key=lambda i: (pool.in_flight(i), last[i]))
    last[best] = turn
    return pool.lease(best)


STRATEGIES = {"round_robin": round_robin, "least_loaded": least_loaded}


@hookimpl(trylast=True)
def select_key(strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
    pick = STRATEGIES.get(strategy)
    return pick(pool) if pick is not None else None
