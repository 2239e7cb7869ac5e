"""``RedisLimiter``: a token bucket whose books are in Redis, shared by every process that names
the same bucket. The same semantics as llmplug's local ``TokenBucket`` (capacity, refill per
second, ``adjust``/``tighten``/``reset``), kept as a GCRA with reservations."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from llmplug import ConfigError, SharedKeyState, TokenBucket

from ._conn import Conn, RedisUnavailableError, Unavailable, script
from ._scripts import RATE
from ._sender import sender_for

if TYPE_CHECKING:
    from ._health import RedisKeyHealth

__all__ = ["RedisLimiter"]

_log = logging.getLogger("llmplug.redis")
_RATE = script(RATE)


class RedisLimiter:
    """Up to ``capacity`` tokens refilled at ``refill_rate`` per second, shared through Redis
    under ``key``. Over any window of ``t`` seconds every process together is admitted at most
    ``capacity + refill_rate * t``. When Redis is unavailable: ``on_unavailable="fail"`` raises
    :class:`RedisUnavailableError`; ``"local"`` warns once and uses ``fallback`` (a local bucket
    sized at this process's share) until Redis answers again."""

    kind = "redis"

    def __init__(
        self,
        conn: Conn,
        key: str,
        capacity: float,
        refill_rate: float,
        *,
        on_unavailable: str,
        fallback: TokenBucket,
        health: RedisKeyHealth | None = None,
    ) -> None:
        if not capacity > 0 or not refill_rate > 0:
            raise ConfigError("a redis limiter needs capacity > 0 and refill_rate > 0")
        self.conn = conn
        self.key = key
        self.capacity = float(capacity)
        self.refill_rate = float(refill_rate)
        self.on_unavailable = on_unavailable
        self.fallback = fallback
        self.health = health
        #: Microseconds per token, and the burst tolerance (a full bucket) in microseconds.
        self._interval = 1e6 / self.refill_rate
        self._tau = self.capacity * self._interval
        self._warned = False
        self.sender = sender_for(conn)
        conn.on_recover(self._recovered)

    def _args(self, op: str, cost: float) -> list[str | int | float]:
        return [op, repr(float(cost)), repr(self._interval), repr(self._tau)]

    def _recovered(self) -> None:
        self._warned = False

    def _unavailable(self, exc: Unavailable) -> None:
        """Raise (``fail``) or warn once per outage (``local``)."""
        if self.on_unavailable == "fail":
            raise RedisUnavailableError(str(exc)) from None
        if not self._warned:
            self._warned = True
            _log.warning(
                "llmplug.redis: %s; using a local bucket of capacity %g, refill %g/s until it "
                "answers again",
                exc,
                self.fallback.capacity,
                self.fallback.refill_rate,
            )

    async def acquire(self, cost: float = 1.0) -> None:
        """Reserve ``cost`` tokens and sleep until their turn (one script, no polling)."""
        wait = await self.reserve(cost)
        if wait <= 0:
            return
        try:
            await asyncio.sleep(wait)
        except asyncio.CancelledError:
            # Its turn was never used: the next caller to reach Redis gets it.
            self._send("give", cost)
            raise

    async def reserve(self, cost: float = 1.0) -> float:
        """Reserve ``cost`` tokens and return the seconds until their turn, for a caller that
        schedules itself (it must not go before then; ``adjust(cost)`` gives an unused turn
        back). In local fallback the local bucket is waited for and 0 is returned."""
        if cost > self.capacity:
            raise ConfigError(
                f"a request costing {cost:g} can never pass a bucket of capacity {self.capacity:g}"
            )
        keys = [self.key]
        args = self._args("take", cost)
        health = self.health
        if health is not None:
            keys += [health.hash_key, *health.lease_keys, *health.owner_keys]
            args += [len(health.fingerprints), health.prefix, *health.fingerprints]
        try:
            out = await self.conn.run(_RATE, keys, args)
        except Unavailable as exc:
            self._unavailable(exc)
            # A share smaller than one big request (a token budget split 8 ways) still lets it
            # through, one at a time.
            await self.fallback.acquire(min(cost, self.fallback.capacity))
            return 0.0
        if health is not None:
            health.apply(_view(health.fingerprints, out))
        return int(out[0]) / 1e6

    def _send(self, op: str, amount: float) -> None:
        # By this process's sender, not from the caller's loop, which may end (asyncio.run per
        # sync call) before the send is done. Lost with an outage: the bucket is only more
        # careful (a give-back), or it relies on the server's own limit (a charge).
        self.sender.put([(_RATE, [self.key], self._args(op, amount))])

    async def flush(self) -> None:
        """Return when the give-backs, charges and resets made so far have reached Redis."""
        await self.sender.flush()

    def adjust(self, delta: float) -> None:
        """Give back (``delta`` > 0) or charge more (< 0) after the fact; sent in the
        background by this process's sender (called from synchronous code). As the local
        bucket: a debt of at most one capacity, and a delta that is not finite is ignored."""
        if not delta or not math.isfinite(delta):
            return
        if self.conn.resting():
            self.fallback.adjust(delta)
            return
        amount = min(abs(delta), 2 * self.capacity)
        self._send("give" if delta > 0 else "charge", amount)

    def tighten(self, remaining: float) -> None:
        """The server says only ``remaining`` are left: believe it if that is fewer."""
        if not remaining >= 0:  # NaN, or a negative count: nothing to believe
            return
        remaining = min(remaining, self.capacity)
        if self.conn.resting():
            self.fallback.tighten(remaining * self.fallback.capacity / self.capacity)
            return
        self._send("tighten", max(0.0, remaining))

    def reset(self) -> None:
        """Refill to capacity (for every process)."""
        self.fallback.reset()
        self._send("reset", 0.0)

    def status(self) -> dict[str, Any]:
        return {
            "capacity": int(self.capacity) if self.capacity.is_integer() else self.capacity,
            "refill_rate": self.refill_rate,
            "backend": "redis",
            "redis_available": not self.conn.down,
        }

    def __repr__(self) -> str:
        return (
            f"RedisLimiter(key={self.key!r}, capacity={self.capacity:g}, "
            f"refill_rate={self.refill_rate:g})"
        )


def _view(fingerprints: list[str], out: list[Any]) -> dict[str, SharedKeyState]:
    view: dict[str, SharedKeyState] = {}
    for n, fp in enumerate(fingerprints):
        left, disabled, reason, others = out[1 + 4 * n : 5 + 4 * n]
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        view[fp] = SharedKeyState(int(left) / 1e6, text or None, bool(int(disabled)), int(others))
    return view
