"""The token bucket the default ``acquire_rate`` plugin drives: continuous refill, first come
first served, and no polling (a waiter sleeps until the moment its tokens exist)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from ._errors import ConfigError

__all__ = ["TokenBucket"]


class TokenBucket:
    """Up to ``capacity`` tokens, refilled at ``refill_rate`` per second.

    Over any window of ``t`` seconds it admits at most ``capacity + refill_rate * t`` tokens.
    Waiters are served strictly in arrival order, so a big request is never starved by small
    ones behind it. One bucket belongs to one interface; it is never shared by accident."""

    kind = "token_bucket"

    __slots__ = ("_last", "_timer", "_tokens", "_waiters", "capacity", "refill_rate")

    def __init__(self, capacity: float, refill_rate: float) -> None:
        if not capacity > 0:
            raise ConfigError(f"rate_limit_capacity must be > 0, got {capacity!r}")
        if not refill_rate > 0:
            raise ConfigError(f"rate_limit_refill_rate must be > 0, got {refill_rate!r}")
        self.capacity = float(capacity)
        self.refill_rate = float(refill_rate)
        self._tokens = float(capacity)
        self._last = time.monotonic()
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def _refill(self) -> float:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_rate)
        self._last = now
        return now

    @property
    def available(self) -> float:
        """Tokens available now."""
        self._refill()
        return self._tokens

    @property
    def waiting(self) -> int:
        """Requests queued for tokens."""
        return len(self._waiters)

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens are there and take them."""
        if cost > self.capacity:
            raise ConfigError(
                f"a request costing {cost:g} can never pass a bucket of capacity {self.capacity:g}"
            )
        if not self._waiters:
            self._refill()
            if self._tokens >= cost:
                self._tokens -= cost
                return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((cost, fut))
        if len(self._waiters) == 1:
            self._schedule()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Granted and cancelled in the same tick: the tokens were never used.
                self._tokens = min(self.capacity, self._tokens + cost)
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already
                    self._waiters.remove((cost, fut))
            self._wake()
            raise

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiters:
            return
        cost = self._waiters[0][0]
        delay = max(0.0, (cost - self._tokens) / self.refill_rate)
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._refill()
        while self._waiters:
            cost, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            # A tiny epsilon absorbs float error so a waiter woken on time is not re-slept.
            if self._tokens + 1e-9 < cost:
                break
            self._tokens = max(0.0, self._tokens - cost)
            self._waiters.popleft()
            fut.set_result(None)
        self._schedule()

    def adjust(self, delta: float) -> None:
        """Give back (``delta`` > 0) or charge more (< 0) after the fact, e.g. to reconcile an
        estimate with the real usage. A charge may leave a debt that later requests wait out."""
        self._refill()
        self._tokens = min(self.capacity, self._tokens + delta)
        if delta > 0 and self._waiters:
            self._wake()

    def tighten(self, remaining: float) -> None:
        """The server says only ``remaining`` are left: believe it if that is fewer."""
        self._refill()
        if remaining < self._tokens:
            self._tokens = max(0.0, remaining)

    def reset(self) -> None:
        """Refill to capacity (waiters are served at once)."""
        self._tokens = self.capacity
        self._last = time.monotonic()
        if self._waiters:
            self._wake()

    def status(self) -> dict[str, float | int]:
        """``{"available", "capacity", "refill_rate"}`` like SimpleLLMFunc, plus ``waiting``."""
        return {
            "available": max(0, int(self.available)),
            "capacity": int(self.capacity) if self.capacity.is_integer() else self.capacity,
            "refill_rate": self.refill_rate,
            "waiting": len(self._waiters),
        }

    def __repr__(self) -> str:
        return f"TokenBucket(capacity={self.capacity:g}, refill_rate={self.refill_rate:g})"
