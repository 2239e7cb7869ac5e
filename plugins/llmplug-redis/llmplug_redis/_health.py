"""Shared key health: the :class:`llmplug.KeyHealth` a pool calls (synchronously, under its
lock) on every lease, release and cooldown. Each change is only noted there; it goes to Redis
before this process's next admission (``flush``, awaited by the limiter) or from a task of the
loop it happened on. The others' state comes back with each admission of the request limiter,
in the same script, so a key cooled elsewhere is seen before the next request picks a key.

In-flight counts are leases in a sorted set per key, scored by their expiry: a process renews
its own every ``lease_ttl / 3``, so those of a killed process expire by themselves. Renewal also
republishes this process's view (its leases, the pool's live cooldowns), as does the first call
that reaches Redis after a failure: that rebuilds the shared view after Redis lost it (a
restart, a failover), at once or within ``lease_ttl / 3``."""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import uuid

from llmplug import APIKeyPool, SharedKeyState

from ._conn import Conn, script
from ._scripts import HEALTH

__all__ = ["RedisKeyHealth"]

_HEALTH = script(HEALTH)
Op = tuple[list[str], list[str | int | float]]


class RedisKeyHealth:
    """Key health of one pool's keys shared through Redis, named by fingerprint only."""

    def __init__(self, conn: Conn, base: str, pool: APIKeyPool, lease_ttl: float) -> None:
        self.conn = conn
        self.pool = pool
        self.lease_ttl = lease_ttl
        self.hash_key = f"{base}:health"
        self.fingerprints = pool.fingerprints
        self.lease_keys = [f"{base}:leases:{fp}" for fp in self.fingerprints]
        self._lease_key = dict(zip(self.fingerprints, self.lease_keys, strict=True))
        #: Lease members start with this process's id (for whoever reads Redis by hand).
        self.prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}:"
        self._seq = itertools.count()
        self._own: dict[str, list[str]] = {fp: [] for fp in self.fingerprints}
        self._outbox: list[Op] = []
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None
        conn.on_recover(self._republish)

    # -- called by the pool, under its lock: note and return -------------------------------------

    def leased(self, fingerprint: str) -> None:
        member = f"{self.prefix}{next(self._seq)}"
        with self._lock:
            self._own[fingerprint].append(member)
            self._outbox.append(self._lease_op(fingerprint, [member]))
        self._soon()

    def released(self, fingerprint: str) -> None:
        with self._lock:
            own = self._own[fingerprint]
            if not own:
                return
            member = own.pop()
            self._outbox.append(
                ([self.hash_key, self._lease_key[fingerprint]], ["release", fingerprint, member])
            )
        self._soon()

    def cooled(self, fingerprint: str, seconds: float, reason: str, disable: bool) -> None:
        with self._lock:
            self._outbox.append(self._cool_op(fingerprint, seconds, reason, disable))
        self._soon()

    # -- the rest --------------------------------------------------------------------------------

    def _lease_op(self, fp: str, members: list[str]) -> Op:
        return (
            [self.hash_key, self._lease_key[fp]],
            ["lease", fp, int(self.lease_ttl * 1e6), *members],
        )

    def _cool_op(self, fp: str, seconds: float, reason: str, disable: bool) -> Op:
        return (
            [self.hash_key, self._lease_key[fp]],
            ["cool", fp, int(seconds * 1e6), int(disable), reason[:500]],
        )

    def own_counts(self) -> list[int]:
        """This process's leases per key (as sent: the outbox was just flushed)."""
        with self._lock:
            return [len(self._own[fp]) for fp in self.fingerprints]

    def apply(self, view: dict[str, SharedKeyState]) -> None:
        self.pool.apply_shared(view)

    def _soon(self) -> None:
        """Send the outbox from a task of this loop, and keep the renewal timer going."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sent with the next admission
        self.conn.spawn(self.flush())
        if self._timer is None or self._timer_loop is None or self._timer_loop.is_closed():
            self._timer_loop = loop
            self._timer = loop.call_later(self.lease_ttl / 3, self._renew)

    def _renew(self) -> None:
        self._timer = None
        with self._lock:
            live = any(self._own.values())
        # Renewed while there is something to keep: this process's leases, or a cooldown a
        # Redis restart may have lost.
        live = live or any(row["state"] != "ok" for row in self.pool.status())
        self._republish()
        if live:
            self._soon()

    def _republish(self) -> None:
        """Everything this process knows goes to Redis again: its leases (renewed), the pool's
        live cooldowns (another process may have learned them from a Redis that lost them)."""
        with self._lock:
            for fp, members in self._own.items():
                if members:
                    self._outbox.append(self._lease_op(fp, list(members)))
        for row in self.pool.status():
            if row["state"] != "ok" and row["cooldown_seconds"] > 0:
                self._outbox.append(
                    self._cool_op(
                        row["key"],
                        row["cooldown_seconds"],
                        row["cooldown_reason"] or "",
                        row["state"] == "disabled",
                    )
                )

    async def flush(self) -> None:
        """Send what changed here since the last flush (nothing if nothing did)."""
        if not self._outbox:
            return
        with self._lock:
            ops, self._outbox = self._outbox, []
        # Together, so they go in one pipeline, in order. Lost with an outage: the first call
        # that reaches Redis again republishes what counts.
        await asyncio.gather(
            *(self.conn.run(_HEALTH, keys, args) for keys, args in ops), return_exceptions=True
        )

    async def aclose(self) -> None:
        """Give back every lease still held here (as a clean shutdown should)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
