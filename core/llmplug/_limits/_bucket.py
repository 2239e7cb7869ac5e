"""The token bucket the default ``acquire_rate`` plugin drives: continuous refill, first come
first served, no polling, and safe to share between threads and event loops.

The books (tokens, the queue) sit behind one ``threading.Lock``. Each waiter waits on a future of
its *own* loop, and has a timer on that loop: the head's fires when its tokens exist and serves
the queue; every other waiter's fires a little after its turn, only in case the head's loop is
gone. Nothing of one loop is touched from another thread except through
``call_soon_threadsafe``, and a waiter whose loop has ended is dropped instead of blocking the
queue behind it."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from llmplug._vocab._errors import ConfigError

if TYPE_CHECKING:
    import asyncio

__all__ = ["TokenBucket"]

#: Absorbs float error, so a waiter woken on time is not put back to sleep for a nanosecond.
_EPSILON = 1e-9

#: With ``slack``, a wake-up gathers a burst that leaves this many seconds of refill room below
#: capacity: a timer that fires late then loses no refill to a full bucket.
_LATE = 0.02

#: Waiters behind the head look at the queue this long after their turn, in case the head
#: could not serve them (its loop ended, or is blocked); normally the head served them first.
_BACKSTOP = 0.05


class _Waiter:
    __slots__ = ("cost", "fut", "granted", "loop", "mark", "queued", "timer")

    def __init__(
        self, cost: float, loop: asyncio.AbstractEventLoop, mark: float, fut: asyncio.Future[None]
    ) -> None:
        self.cost = cost
        self.loop = loop
        #: The bucket's total queued cost up to and including this waiter.
        self.mark = mark
        self.fut = fut
        self.granted = False
        self.queued = True
        #: A timer of ``loop``: made, moved and cancelled on that loop's thread only.
        self.timer: asyncio.TimerHandle | None = None


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running ``loop`` now (so its futures and timers are ours)."""
    import asyncio  # imported on use, as everywhere in llmplug: see tests/core/test_import.py

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class TokenBucket:
    """Up to ``capacity`` tokens, refilled at ``refill_rate`` per second.

    Over any window of ``t`` seconds it admits at most ``capacity + refill_rate * t`` tokens,
    however many threads and event loops share it. Waiters are served strictly in arrival
    order, so a big request is never starved by small ones behind it.

    ``slack`` (seconds, default 0) lets a waiter be held up to that long past its turn so that
    the waiters behind it, whose turns come within it, are admitted on the same wake-up. The rate
    and the bound are the same; what it saves is wake-ups, each of which costs far more CPU after
    an idle stretch than the work it does. ``llmplug batch`` sets it: there throughput counts,
    not one request's latency."""

    kind = "token_bucket"

    __slots__ = (
        "_dequeued",
        "_enqueued",
        "_last",
        "_lock",
        "_tokens",
        "_waiters",
        "capacity",
        "refill_rate",
        "slack",
    )

    def __init__(self, capacity: float, refill_rate: float, *, slack: float = 0.0) -> None:
        if not capacity > 0:
            raise ConfigError(f"rate_limit_capacity must be > 0, got {capacity!r}")
        if not refill_rate > 0:
            raise ConfigError(f"rate_limit_refill_rate must be > 0, got {refill_rate!r}")
        if not slack >= 0:
            raise ConfigError(f"slack must be >= 0 seconds, got {slack!r}")
        self.capacity = float(capacity)
        self.refill_rate = float(refill_rate)
        self.slack = float(slack)
        self._tokens = float(capacity)
        self._last = time.monotonic()
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        # Running totals of the cost that joined and left the queue: a waiter's turn is known
        # without walking the queue ahead of it.
        self._enqueued = 0.0
        self._dequeued = 0.0

    # -- under the lock --------------------------------------------------------------------------

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.refill_rate)
        self._last = now

    def _leave(self, w: _Waiter) -> None:
        w.queued = False
        self._dequeued += w.cost

    def _grant(self, *, rearm: bool = False) -> None:
        """Serve the queue from its head while the tokens last, each served waiter woken on its
        own loop, in order; then make sure the new head's timer is set for its turn.
        ``rearm``: every waiter's turn came closer (tokens given back, a waiter ahead left)."""
        self._refill()
        head = self._waiters[0] if self._waiters else None
        while self._waiters:
            w = self._waiters[0]
            if w.loop.is_closed():  # nobody is left to take that turn
                self._leave(self._waiters.popleft())
                continue
            if self._tokens + _EPSILON < w.cost:
                break
            self._tokens = max(0.0, self._tokens - w.cost)
            w.granted = True
            self._leave(self._waiters.popleft())
            self._serve(w)
        if rearm:
            for w in self._waiters:
                self._rearm(w)
        elif self._waiters and self._waiters[0] is not head:
            self._rearm(self._waiters[0])

    def _serve(self, w: _Waiter) -> None:
        if _on_loop(w.loop):
            _wake(w.fut)
            return
        try:
            w.loop.call_soon_threadsafe(_wake, w.fut)
        except RuntimeError:  # its loop closed meanwhile: the tokens were never used
            self._tokens = min(self.capacity, self._tokens + w.cost)

    def _rearm(self, w: _Waiter) -> None:
        if _on_loop(w.loop):
            self._arm(w)
            return
        with contextlib.suppress(RuntimeError):  # its loop closed: the next _grant drops it
            w.loop.call_soon_threadsafe(self._arm_later, w)

    def _turn(self, w: _Waiter) -> float:
        """Seconds from now until the tokens of ``w`` and every waiter ahead of it exist."""
        return max(0.0, (w.mark - self._dequeued - self._tokens) / self.refill_rate)

    def _arm(self, w: _Waiter) -> None:
        """Set ``w``'s timer for its turn (on its own loop, which is running here)."""
        if w.timer is not None:
            w.timer.cancel()
        delay = self._turn(w)
        if self._waiters[0] is not w:
            # Early rather than late when a waiter behind it left: it just looks again.
            delay += self.slack + _BACKSTOP
        elif self.slack and delay:
            delay = self._gathered(delay)
        w.timer = w.loop.call_later(delay, self._tick, w)

    def _joins_burst(self, head: _Waiter, w: _Waiter) -> bool:
        return w is head or (
            w.mark - self._dequeued + _LATE * self.refill_rate <= self.capacity
            and self._turn(w) <= self._turn(head) + self.slack
        )

    def _gathered(self, delay: float) -> float:
        """When to wake the head so that it admits the waiters whose turns fall within ``slack``
        of its own, as many as one bucketful of tokens covers."""
        head, last = self._waiters[0], delay
        for w in self._waiters:
            if not self._joins_burst(head, w):
                break
            last = self._turn(w)
        return last

    # -- on a waiter's own loop ------------------------------------------------------------------

    def _arm_later(self, w: _Waiter) -> None:
        with self._lock:
            if w.queued:
                self._arm(w)

    def _tick(self, w: _Waiter) -> None:
        with self._lock:
            w.timer = None
            self._grant()
            if w.queued:
                self._arm(w)

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
        with self._lock:
            self._refill()
            if not self._waiters and self._tokens >= cost:
                self._tokens -= cost
                return
            # Only a request that waits needs its loop (asyncio is loaded: a loop runs us).
            import asyncio

            loop = asyncio.get_running_loop()
            self._enqueued += cost
            me = _Waiter(cost, loop, self._enqueued, loop.create_future())
            self._waiters.append(me)
            self._arm(me)
            head = self._waiters[0]
            if self.slack and head is not me and self._joins_burst(head, me):
                self._rearm(head)  # its wake-up can take this one along
        try:
            await me.fut
        except BaseException:
            with self._lock:
                if me.granted:
                    # Granted, then cancelled before it could go: the tokens were never used.
                    self._tokens = min(self.capacity, self._tokens + cost)
                elif me.queued:
                    self._waiters.remove(me)
                    self._leave(me)
                self._grant(rearm=True)
            raise
        finally:
            if me.timer is not None:
                me.timer.cancel()

    def adjust(self, delta: float) -> None:
        """Give back (``delta`` > 0) or charge more (< 0) after the fact, e.g. to reconcile an
        estimate with the real usage. A charge may leave a debt that later requests wait out,
        of at most one capacity: a server refuses a request bigger than its whole budget, so
        a larger debt can only come from a wrong count, which must not stop the budget for
        good. A delta that is not finite is ignored."""
        if not math.isfinite(delta):
            return
        with self._lock:
            self._refill()
            self._tokens = max(-self.capacity, min(self.capacity, self._tokens + delta))
            if delta > 0 and self._waiters:
                self._grant(rearm=True)

    def tighten(self, remaining: float) -> None:
        """The server says only ``remaining`` are left: believe it if that is fewer (NaN is
        not believed)."""
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
