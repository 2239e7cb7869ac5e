"""Shared key health: the :class:`llmplug.KeyHealth` a pool calls (synchronously, under its
lock) on every lease, release and cooldown. Each change is only queued there, in the order of
the pool's books, and this process's sender (``_sender.py``: one thread, one ordered pipeline at
a time) takes it to Redis, whichever thread or loop made it and however soon that loop ends.
The others' state comes back with each admission of the request limiter, in the same script,
so a key cooled elsewhere is seen before the next request picks a key.

In-flight counts are leases in a sorted set per key, scored by their expiry: this process
renews its own every ``lease_ttl / 3``, so those of a killed process expire by themselves. Each
lease is also in a second set per key, all scores 0, so that this process's own leases in Redis
are counted by their name (``ZLEXCOUNT`` over its prefix, O(log n)) at the moment the script
runs: the others' count is the rest, exact however many of this process's changes are still on
their way. Renewal also republishes this process's view (its leases, the pool's live
cooldowns), as does the first call that reaches Redis after a failure: that rebuilds the shared
view after Redis lost it (a restart, a failover), at once or within ``lease_ttl / 3``."""

from __future__ import annotations

import itertools
import os
import threading
import uuid

from llmplug import APIKeyPool, SharedKeyState

from ._conn import Conn, script
from ._scripts import HEALTH
from ._sender import Op, sender_for

__all__ = ["RedisKeyHealth"]

_HEALTH = script(HEALTH)


class RedisKeyHealth:
    """Key health of one pool's keys shared through Redis, named by fingerprint only."""

    def __init__(self, conn: Conn, base: str, pool: APIKeyPool, lease_ttl: float) -> None:
        self.conn = conn
        self.pool = pool
        self.lease_ttl = lease_ttl
        self.hash_key = f"{base}:health"
        self.fingerprints = pool.fingerprints
        self.lease_keys = [f"{base}:leases:{fp}" for fp in self.fingerprints]
        #: The same leases by name only (all scores 0), for counting this process's own.
        self.owner_keys = [f"{base}:owners:{fp}" for fp in self.fingerprints]
        self._keys = {
            fp: [self.hash_key, lease, owner]
            for fp, lease, owner in zip(
                self.fingerprints, self.lease_keys, self.owner_keys, strict=True
            )
        }
        #: Lease members start with this process's id (for whoever reads Redis by hand), and
        #: are counted as this process's by it.
        self.prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}:"
        self._seq = itertools.count()
        self._own: dict[str, list[str]] = {fp: [] for fp in self.fingerprints}
        self._lock = threading.Lock()
        self._renewing = False
        self.sender = sender_for(conn)
        conn.on_recover(self._republish)

    # -- called by the pool, under its lock: queue and return ------------------------------------

    def leased(self, fingerprint: str) -> None:
        member = f"{self.prefix}{next(self._seq)}"
        with self._lock:
            self._own[fingerprint].append(member)
            self.sender.put([self._lease_op(fingerprint, [member])])
        self._keep_renewing()

    def released(self, fingerprint: str) -> None:
        with self._lock:
            own = self._own[fingerprint]
            if not own:
                return
            member = own.pop()
            self.sender.put([(_HEALTH, self._keys[fingerprint], ["release", fingerprint, member])])

    def cooled(self, fingerprint: str, seconds: float, reason: str, disable: bool) -> None:
        self.sender.put([self._cool_op(fingerprint, seconds, reason, disable)])
        self._keep_renewing()

    # -- the rest --------------------------------------------------------------------------------

    def _lease_op(self, fp: str, members: list[str]) -> Op:
        return (_HEALTH, self._keys[fp], ["lease", fp, int(self.lease_ttl * 1e6), *members])

    def _cool_op(self, fp: str, seconds: float, reason: str, disable: bool) -> Op:
        return (
            _HEALTH,
            self._keys[fp],
            ["cool", fp, int(seconds * 1e6), int(disable), reason[:500]],
        )

    def apply(self, view: dict[str, SharedKeyState]) -> None:
        self.pool.apply_shared(view)

    def _keep_renewing(self) -> None:
        """Renew this process's leases every ``lease_ttl / 3`` while there is something to
        keep, on the sender's loop (a caller's may end any moment)."""
        with self._lock:
            if self._renewing:
                return
            self._renewing = True
        self.sender.call_later(self.lease_ttl / 3, self._renew)

    def _renew(self) -> None:
        with self._lock:
            self._renewing = False
            live = any(self._own.values())
        # Renewed while there is something to keep: this process's leases, or a cooldown a
        # Redis restart may have lost.
        live = live or any(row["state"] != "ok" for row in self.pool.status())
        self._republish()
        if live:
            self._keep_renewing()

    def _republish(self) -> None:
        """Everything this process knows goes to Redis again: exactly the leases it holds
        (renewed; any other of its names is a release lost with an outage that Redis outlived,
        a phantom in flight for every process until its ``lease_ttl``, and goes), the pool's
        live cooldowns (another process may have learned them from a Redis that lost them)."""
        with self._lock:
            ops: list[Op] = [
                (
                    _HEALTH,
                    self._keys[fp],
                    ["own", fp, int(self.lease_ttl * 1e6), self.prefix, *members],
                )
                for fp, members in self._own.items()
            ]
            ops += [
                self._cool_op(
                    row["key"],
                    row["cooldown_seconds"],
                    row["cooldown_reason"] or "",
                    row["state"] == "disabled",
                )
                for row in self.pool.status()
                if row["state"] != "ok" and row["cooldown_seconds"] > 0
            ]
            self.sender.put(ops)

    async def flush(self) -> None:
        """Return when every change made here so far has reached Redis (or was lost with an
        outage, which the first call to reach Redis again makes good)."""
        await self.sender.flush()

    async def aclose(self) -> None:
        """Give back every lease released here (as a clean shutdown should)."""
        await self.flush()
