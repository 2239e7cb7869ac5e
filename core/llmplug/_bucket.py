"""The token bucket the default ``acquire_rate`` plugin drives: continuous refill, first come
first served, no polling, and safe to share between threads and event loops.

The books (tokens, the queue) sit behind one ``threading.Lock``; each waiter sleeps on a future
and a timer of its *own* loop. Nothing of one loop is ever touched from another: a waiter on
another loop is woken through ``call_soon_threadsafe``, and a waiter whose loop has ended is
dropped from the queue instead of blocking everyone behind it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

from ._errors import ConfigError

__all__ = ["TokenBucket"]

#: Absorbs float error, so a waiter woken on time is not put back to sleep for a nanosecond.
_EPSILON = 1e-9

#: Waiters behind the head wake this much after their turn, only in case the head cannot serve
#: them (its loop ended, or is blocked): the head, woken on time, serves them in order first.
_BACKSTOP = 0.05


class _Waiter:
    __slots__ = ("cost", "fut", "granted", "loop")

    def __init__(self, cost: float, loop: asyncio.AbstractEventLoop) -> None:
        self.cost = cost
        self.loop = loop
        self.granted = False
        self.fut: asyncio.Future[None] | None = None


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class TokenBucket:
    """Up to ``capacity`` tokens, refilled at ``refill_rate`` per second.

    Over any window of ``t`` seconds it admits at most ``capacity + refill_rate * t`` tokens,
    however many threads and event loops share it. Waiters are served strictly in arrival
    order, so a big request is never starved by small ones behind it."""

    kind = "token_bucket"

    __slots__ = ("_last", "_lock", "_tokens", "_waiters", "capacity", "refill_rate")

    def __init__(self, capacity: float, refill_rate: float) -> None:
        if not capacity > 0:
            raise ConfigError(f"rate_limit_capacity must be > 0, got {capacity!r}")
        if not refill_rate > 0:
            raise ConfigError(f"rate_limit_refill_rate must be > 0, got {refill_rate!r}")
        self.capacity = float(capacity)
        self.refill_rate = float(refill_rate)
        self._tokens = float(capacity)
        self._last = time.monotonic()
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()

    # -- under the lock --------------------------------------------------------------------------

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_rate)
        self._last = now

    def _grant(self, *, rearm: bool = False) -> _Waiter | None:
        """Serve the queue from its head while the tokens last, waking each served waiter on
        its own loop, and return the first one served. A waiter whose loop is gone is dropped:
        nobody can take its turn. ``rearm``: the turns of those still waiting came closer
        (tokens given back, a waiter ahead left), so each computes its wait again."""
        self._refill()
        head = self._waiters[0] if self._waiters else None
        first: _Waiter | None = None
        while self._waiters:
            w = self._waiters[0]
            if w.loop.is_closed():
                self._waiters.popleft()
                continue
            if self._tokens + _EPSILON < w.cost:
                break
            self._tokens = max(0.0, self._tokens - w.cost)
            w.granted = True
            self._waiters.popleft()
            self._notify(w)
            first = first or w
        if rearm:
            for w in self._waiters:
                self._notify(w)
        elif self._waiters and self._waiters[0] is not head:
            # A new head: its wait got shorter, let it compute it again.
            self._notify(self._waiters[0])
        return first

    def _notify(self, w: _Waiter) -> None:
        fut = w.fut
        if fut is None or fut.done():
            return
        try:
            w.loop.call_soon_threadsafe(_wake, fut)
        except RuntimeError:  # its loop closed meanwhile; it will never look again
            if w.granted:
                self._tokens = min(self.capacity, self._tokens + w.cost)

    def _eta(self, me: _Waiter) -> float:
        """Seconds until the tokens of every waiter up to ``me`` exist."""
        need = -self._tokens
        for w in self._waiters:
            need += w.cost
            if w is me:
                break
        return max(0.0, need / self.refill_rate)

    # -- public ----------------------------------------------------------------------------------

    @property
    def available(self) -> float:
        """Tokens available now."""
        with self._lock:
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
        loop = asyncio.get_running_loop()
        with self._lock:
            if not self._waiters:
                self._refill()
                if self._tokens >= cost:
                    self._tokens -= cost
                    return
            me = _Waiter(cost, loop)
            self._waiters.append(me)
        try:
            while True:
                with self._lock:
                    if me.granted:
                        return
                    fut = me.fut = loop.create_future()
                    if self._grant() is me:
                        return
                    # Served behind others: resume after them (their wake-ups were queued
                    # first). Else the head sleeps until its turn, and every other waiter has
                    # a timer of its own a little later, so no single loop (which might end)
                    # holds up the queue.
                    delay = None
                    if not me.granted:
                        delay = self._eta(me)
                        if self._waiters[0] is not me:
                            delay += _BACKSTOP
                timer = None if delay is None else loop.call_later(delay, _wake, fut)
                try:
                    await fut
                finally:
                    if timer is not None:
                        timer.cancel()
        except BaseException:
            with self._lock:
                if me.granted:
                    # Granted, then cancelled before it could go: the tokens were never used.
                    self._tokens = min(self.capacity, self._tokens + cost)
                elif me in self._waiters:
                    self._waiters.remove(me)
                self._grant(rearm=True)
            raise

    def adjust(self, delta: float) -> None:
        """Give back (``delta`` > 0) or charge more (< 0) after the fact, e.g. to reconcile an
        estimate with the real usage. A charge may leave a debt that later requests wait out."""
        with self._lock:
            self._refill()
            self._tokens = min(self.capacity, self._tokens + delta)
            if delta > 0 and self._waiters:
                self._grant(rearm=True)

    def tighten(self, remaining: float) -> None:
        """The server says only ``remaining`` are left: believe it if that is fewer."""
        with self._lock:
            self._refill()
            if remaining < self._tokens:
                self._tokens = max(0.0, remaining)

    def reset(self) -> None:
        """Refill to capacity (waiters are served at once)."""
        with self._lock:
            self._tokens = self.capacity
            self._last = time.monotonic()
            if self._waiters:
                self._grant(rearm=True)

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
