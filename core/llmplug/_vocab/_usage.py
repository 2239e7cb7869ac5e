"""Token usage kept per interface: the last call's, and running totals."""

from __future__ import annotations

import threading

from ._types import Usage

__all__ = ["UsageTracker"]


class UsageTracker:
    """What an interface has spent. ``last`` is the latest result's usage (None if the server
    sent none); :meth:`total` adds every result's usage. With a ``pricing`` on the interface,
    ``cost`` adds what the results cost and ``last_cost`` is the latest one's (else None)."""

    __slots__ = ("_lock", "_total", "calls", "cost", "last", "last_cost")

    def __init__(self) -> None:
        # Calls on other threads' loops add to the same totals; none may be lost.
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every call counted so far."""
        with self._lock:
            self.calls = 0
            self.last: Usage | None = None
            self._total = Usage()
            self.cost = 0.0
            self.last_cost: float | None = None

    def add(self, usage: Usage | None, cost: float | None = None) -> None:
        """Count one result's usage and cost (None: the server sent no usage, or no pricing)."""
        with self._lock:
            self.calls += 1
            self.last = usage
            self.last_cost = cost
            if usage is not None:
                self._total = self._total + usage
            if cost is not None:
                self.cost += cost

    def total(self) -> Usage:
        """Every counted result's usage added up."""
        return self._total

    @property
    def input_tokens(self) -> int:
        return self._total.input_tokens

    @property
    def output_tokens(self) -> int:
        return self._total.output_tokens

    @property
    def cached_tokens(self) -> int:
        return self._total.cached_tokens

    @property
    def reasoning_tokens(self) -> int:
        return self._total.reasoning_tokens

    def __repr__(self) -> str:
        return f"UsageTracker(calls={self.calls}, total={self._total!r}, cost={self.cost!r})"
