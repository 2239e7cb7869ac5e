"""This process's changes to the shared books (leases, releases, cooldowns), sent to Redis in
the order they happened, from a thread of their own.

A pool's leases and releases happen on whichever thread and event loop runs the call; a sync
``@llm_function`` call (or ``asyncio.run`` per call) runs on a loop of its own that ends with
the call. Sent from those loops, a release was cut off with its loop (its task cancelled when
the loop ended) or overtook the lease it gave back (two loops, two connections, no order
between them), and Redis kept a lease nobody held: a phantom request in flight, for every
process, until its ``lease_ttl``. So changes are queued here instead, under the pool's lock
(so in the order of the pool's books), and one thread with a loop of its own sends them, one
pipeline at a time, in that order. It outlives every caller's loop, and at exit it sends what
is still queued (bounded by the connection's timeout)."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ._conn import Arg, Unavailable

if TYPE_CHECKING:
    from ._conn import Conn, _Script

__all__ = ["Op", "Sender", "sender_for"]

#: A script run: the script, its keys, its arguments.
Op = tuple["_Script", Sequence[str], Sequence[Arg]]


class Sender:
    """Sends queued script runs in order, from its own thread and loop (started on first use,
    and again in a forked child)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        self._queue: list[Op] = []
        #: Runs queued and runs done (sent, or lost with an outage) since the start: a flush
        #: waits for ``_done`` to reach what ``_queued`` was when it was called.
        self._queued = 0
        self._done = 0
        self._waiters: list[tuple[int, concurrent.futures.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._woken = False
        self._draining = False

    def _running(self) -> asyncio.AbstractEventLoop:
        """The sender's loop, its thread started if it is not (held: ``self._lock``)."""
        if self._loop is not None and self._pid == os.getpid():
            return self._loop
        # First use, or a forked child (the parent's thread is not here, nor are its
        # queued changes this process's to send).
        self._queue, self._waiters, self._woken, self._draining = [], [], False, False
        self._done = self._queued
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="llmplug-redis-sender", daemon=True)
        thread.start()
        self._loop, self._pid = loop, os.getpid()
        return loop

    def put(self, ops: Iterable[Op]) -> None:
        """Queue ``ops`` to be sent after everything queued before them. Never blocks on I/O:
        called under the pool's lock."""
        with self._lock:
            loop = self._running()
            before = len(self._queue)
            self._queue.extend(ops)
            self._queued += len(self._queue) - before
            if self._woken:
                return
            self._woken = True
        loop.call_soon_threadsafe(self._wake)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the sender's loop in ``delay`` seconds (e.g. renewing leases: no
        caller's loop lives long enough to be trusted with it)."""
        with self._lock:
            loop = self._running()
        loop.call_soon_threadsafe(loop.call_later, delay, fn)

    async def flush(self) -> None:
        """Return when everything queued before this call has been sent (or lost with an
        outage, which the first call to reach Redis again makes good). From any loop."""
        with self._lock:
            if self._done >= self._queued:
                return
            fut: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._waiters.append((self._queued, fut))
        await asyncio.wrap_future(fut)

    # -- on the sender's loop --------------------------------------------------------------------

    def _wake(self) -> None:
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    batch, self._queue = self._queue, []
                    self._woken = False
                if not batch:
                    return
                await self._send(batch)
                with self._lock:
                    self._done += len(batch)
                    ready = [f for n, f in self._waiters if n <= self._done]
                    self._waiters = [(n, f) for n, f in self._waiters if n > self._done]
                for f in ready:
                    if not f.done():
                        f.set_result(None)
        finally:
            self._draining = False

    async def _send(self, batch: list[Op]) -> None:
        # Lost with an outage, as before: the first call that reaches Redis again republishes
        # what counts (the leases held, the live cooldowns).
        if self.conn.cluster:
            # A Cluster client sends each command on its own: one at a time keeps the order.
            for script, keys, args in batch:
                with contextlib.suppress(Unavailable):
                    await self.conn.run(script, keys, args)
            return
        # Started in one loop turn, they join one pipeline: one connection, in this order.
        await asyncio.gather(
            *(self.conn.run(script, keys, args) for script, keys, args in batch),
            return_exceptions=True,
        )

    async def _close(self) -> None:
        await self.flush()
        await self.conn.aclose()  # this loop's client

    def close(self, timeout: float) -> None:
        """Send what is queued and close the sender's connection, within ``timeout`` (at exit:
        a clean shutdown gives its leases back rather than leaving them to expire)."""
        with self._lock:
            loop = self._loop if self._pid == os.getpid() else None
        if loop is None or not loop.is_running():
            return
        done = asyncio.run_coroutine_threadsafe(self._close(), loop)
        try:
            done.result(timeout)
        except Exception:
            done.cancel()
        loop.call_soon_threadsafe(loop.stop)


_senders: weakref.WeakKeyDictionary[Conn, Sender] = weakref.WeakKeyDictionary()
_senders_lock = threading.Lock()


def sender_for(conn: Conn) -> Sender:
    """The one sender of ``conn`` (one thread per Redis this process uses)."""
    with _senders_lock:
        sender = _senders.get(conn)
        if sender is None:
            sender = _senders[conn] = Sender(conn)
        return sender


@atexit.register
def _at_exit() -> None:
    for sender in list(_senders.values()):
        sender.close(sender.conn.timeout * 4 + 0.5)
