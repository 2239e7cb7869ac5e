"""A deadline over many short awaits: what ``asyncio.timeout_at`` does, with one timer per deadline.

A stream puts a scope around every await of its generator, never across a ``yield`` (the caller's
code between events is never cancelled by us). ``asyncio.timeout_at`` per await schedules and
cancels a timer each time: a ``TimerHandle``, a heap push among the loop's other timers and a
cancellation, several microseconds per event. Here one timer lives as long as the deadline, and
entering or leaving a scope only notes which task is inside.

Nor does a deadline have a timer of its own in the loop's heap: a call's deadline is far off (30
minutes by default) and nearly every call ends long before it, so its timer would be cancelled,
and asyncio leaves a cancelled timer in the heap until cancelled ones are most of a heap of over
a hundred. Every other timer of the loop (each socket read's timeout) then pays for them, in
comparisons done by a Python ``__lt__``. So the deadlines of a loop share one timer, at the
earliest of them; arming and closing one only adds it to a set and takes it out."""

from __future__ import annotations

import heapq
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["Deadline"]


class Deadline:
    """``with deadline:`` around an await behaves as ``async with asyncio.timeout_at(when):``:
    an await still pending at ``when`` is cancelled and the scope raises ``TimeoutError``; a
    scope entered after ``when`` cancels its first await that suspends. Outside a scope nothing
    is ever cancelled. Scopes may be entered from different tasks, one at a time, never nested.
    ``when=None``: never. Call :meth:`close` when done, so the timer leaves the loop."""

    __slots__ = (
        "__weakref__",
        "_cancelling",
        "_clock",
        "_current_task",
        "_expiring",
        "_handle",
        "_passed",
        "_task",
        "_when",
    )

    def __init__(self, when: float | None) -> None:
        # asyncio is imported on use, not with llmplug (tests/core/test_import.py): once per
        # deadline here, never per scope.
        import asyncio

        self._current_task: Callable[[], asyncio.Task[object] | None] = asyncio.current_task
        self._when = when
        #: The loop's clock while this deadline is armed on it.
        self._clock: _Clock | None = None
        #: A late scope's cancellation, due on the loop's next turn.
        self._handle: asyncio.Handle | None = None
        # The task inside a scope, and its cancel count on entry; None outside any scope.
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        # Set once `when` has passed.
        self._passed = False
        # Set when this scope's task was cancelled by us.
        self._expiring = False

    def __enter__(self) -> Deadline:
        if self._when is None:
            return self
        task = self._current_task()
        if task is None:
            raise RuntimeError("Deadline should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        if self._passed:
            # As timeout_at entered late: the await is cancelled on the loop's next turn.
            self._handle = task.get_loop().call_soon(self._expire)
        elif self._clock is None:
            loop = task.get_loop()
            clock = _clocks.get(loop)
            if clock is None:
                clock = _clocks[loop] = _Clock()
            self._clock = clock
            clock.arm(self, self._when, loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if not self._expiring or task is None:
            return
        self._expiring = False
        import asyncio

        if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            # No other cancel request came meanwhile: this one was ours.
            raise TimeoutError from exc_val

    def _on_time(self) -> None:
        self._passed = True
        self._expire()

    def _expire(self) -> None:
        if self._task is not None and not self._expiring:
            self._expiring = True
            self._task.cancel()

    def close(self) -> None:
        """Disarm the deadline (it no longer matters)."""
        if self._clock is not None:
            self._clock.armed.discard(self)
            self._clock = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class _Clock:
    """The timer of one loop's armed deadlines: it fires at the earliest of them, expires
    those that are due and sets itself for the next. Deadlines of the same length come in
    the order they end, so a new one is later than the timer and arming it only adds it to
    the set; a timer is added only for a deadline earlier than every timer already set, and
    none is ever cancelled (a timer that finds nothing due just sets the next)."""

    __slots__ = ("armed", "timers")

    def __init__(self) -> None:
        #: Weakly: through a deadline in a scope (its task), a clock that held it would hold
        #: its loop, and the table below would never let a dropped loop go.
        self.armed: weakref.WeakSet[Deadline] = weakref.WeakSet()
        #: When this clock's timers fire, earliest first (a heap; nearly always one).
        self.timers: list[float] = []

    def arm(self, deadline: Deadline, when: float, loop: asyncio.AbstractEventLoop) -> None:
        self.armed.add(deadline)
        if not self.timers or when < self.timers[0]:
            heapq.heappush(self.timers, when)
            loop.call_at(when, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # Timers fire in the order of their times: this one is the earliest.
        now = max(heapq.heappop(self.timers), loop.time())
        due = [d for d in self.armed if d._when is not None and d._when <= now]
        self.armed.difference_update(due)
        first = min((d._when for d in self.armed if d._when is not None), default=None)
        if first is not None and (not self.timers or first < self.timers[0]):
            heapq.heappush(self.timers, first)
            loop.call_at(first, self._fire, loop)
        for deadline in due:
            deadline._on_time()


#: Each loop's clock, gone with its loop (a clock holds nothing that holds its loop: its
#: timers, in the loop's heap, hold the clock).
_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clock] = weakref.WeakKeyDictionary()
