"""Resources that belong to one event loop (pooled HTTP or Redis clients), closed on that loop.

A client's sockets are registered with the selector of the loop that opened them. If such a
client became garbage while its loop still ran, asyncio's transports would close their sockets in
``__del__`` without unregistering them from the selector; the descriptors are then reused by the
next sockets opened (another interface's), and the stale selector entries and the late
``remove_reader`` of the dead client's close swallow those sockets' events: every call of a live
interface hangs. So no finaliser here closes anything. Every open resource is held strongly by its
loop's entry in a module table until it has been closed *on its own loop*:

- by its owner (``aclose()`` / ``close_soon()``), awaited or in a task of that loop;
- when the owner is collected: a ``weakref.finalize`` callback, which does no I/O, only asks the
  loop (``call_soon_threadsafe``) to close it in a task;
- when the loop ends: one async generator per loop, closed by the loop's
  ``shutdown_asyncgens()`` (``asyncio.run`` and ``asyncio.Runner`` call it while the loop still
  runs), closes whatever is left.

A loop closed without ``shutdown_asyncgens()`` took its selector with it; its entry is forgotten
the next time any loop opens a resource.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = ["PerLoop"]

T = TypeVar("T")

Loop: TypeAlias = "asyncio.AbstractEventLoop"
_Closer = Callable[[object], Awaitable[None]]

_lock = threading.Lock()


class _LoopEntry:
    """What is open on one loop, held until closed, and the generator that ends with it."""

    __slots__ = ("open", "sentinel")

    def __init__(self) -> None:
        #: id(resource) -> (resource, how to close it, its owner's table): strong references
        #: on purpose.
        self.open: dict[int, tuple[object, _Closer, dict[Loop, Any]]] = {}
        self.sentinel: AsyncGenerator[None, None] | None = None


_loops: dict[Loop, _LoopEntry] = {}
#: Close tasks, held so that nothing collects them before they run.
_closing: set[asyncio.Task[None]] = set()


def _running_loop() -> Loop:
    # asyncio is imported by the first resource, not by `import llmplug` (see test_import).
    import asyncio

    return asyncio.get_running_loop()


async def _entry(loop: Loop) -> _LoopEntry:
    entry = _loops.get(loop)
    if entry is not None:
        return entry
    with _lock:
        for old in [lp for lp in _loops if lp.is_closed()]:
            del _loops[old]
        entry = _loops.get(loop)
        if entry is None:
            entry = _loops[loop] = _LoopEntry()
    if entry.sentinel is None:
        entry.sentinel = _close_with_loop(loop, entry)
        await anext(entry.sentinel)
    return entry


async def _close_with_loop(loop: Loop, entry: _LoopEntry) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        with _lock:
            if _loops.get(loop) is entry:
                del _loops[loop]
        for resource, close, slots in list(entry.open.values()):
            with _lock:
                if slots.get(loop) is resource:
                    del slots[loop]
            await _close(entry, resource, close)


async def _close(entry: _LoopEntry, resource: object, close: _Closer) -> None:
    try:
        await close(resource)
    except Exception:  # a close that fails leaves nothing else to do: the socket is gone
        pass
    finally:
        # Only now: until it is closed, the resource must not become garbage (see above).
        entry.open.pop(id(resource), None)


def _close_in_task(loop: Loop, resource: object, close: _Closer) -> None:
    entry = _loops.get(loop)
    if entry is None or id(resource) not in entry.open:
        return  # closed already, with its loop
    task = loop.create_task(_close(entry, resource, close))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _owner_gone(slots: dict[Loop, Any], close: _Closer) -> None:
    # A weakref.finalize callback: it may run in any thread, inside the garbage collector.
    # It does no I/O and takes no lock a running call may hold; it only asks each loop.
    for loop, resource in list(slots.items()):
        slots.pop(loop, None)
        with contextlib.suppress(RuntimeError):  # that loop is closed, its selector with it
            loop.call_soon_threadsafe(_close_in_task, loop, resource, close)


class PerLoop(Generic[T]):
    """One ``T`` per event loop for one owner: made by ``get(make)`` on the loop's first use,
    closed by ``close(resource)`` on that loop (see the module's docstring for
    when). Safe to use from any number of threads and loops at once.

    ``close`` must not be a bound method of the owner: the owner would never be collected."""

    __slots__ = ("__weakref__", "_close", "_slots")

    def __init__(self, owner: object, close: Callable[[T], Awaitable[None]]) -> None:
        self._close: _Closer = close  # type: ignore[assignment]
        self._slots: dict[Loop, T] = {}
        fin = weakref.finalize(owner, _owner_gone, self._slots, self._close)
        fin.atexit = False  # at exit the loops are gone; nothing is left to ask

    def __len__(self) -> int:
        """Resources open, one per loop that has one."""
        return len(self._slots)

    def current(self) -> T | None:
        """This loop's resource, or None if it has none."""
        return self._slots.get(_running_loop())

    async def get(self, make: Callable[[], T]) -> T:
        """This loop's resource, made by ``make()`` on first use."""
        loop = _running_loop()
        resource = self._slots.get(loop)
        if resource is not None:
            return resource
        entry = await _entry(loop)
        resource = self._slots.get(loop)  # made meanwhile by another task of this loop
        if resource is not None:
            return resource
        resource = make()
        entry.open[id(resource)] = (resource, self._close, self._slots)
        with _lock:
            for old in [lp for lp in self._slots if lp.is_closed()]:
                del self._slots[old]
            self._slots[loop] = resource
        return resource

    def _take(self) -> tuple[Loop, T, _LoopEntry] | None:
        loop = _running_loop()
        with _lock:
            resource = self._slots.pop(loop, None)
        entry = _loops.get(loop)
        if resource is None or entry is None:
            return None
        return loop, resource, entry

    async def aclose(self) -> None:
        """Close this loop's resource now (the next :meth:`get` makes a new one)."""
        taken = self._take()
        if taken is not None:
            _, resource, entry = taken
            await _close(entry, resource, self._close)

    def close_soon(self) -> None:
        """Close this loop's resource in a task of this loop (from a ``finally`` that must not
        await)."""
        taken = self._take()
        if taken is not None:
            loop, resource, _ = taken
            _close_in_task(loop, resource, self._close)
