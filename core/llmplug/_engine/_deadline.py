"""A deadline over many short awaits: what ``asyncio.timeout_at`` does, with one timer per deadline.

A stream puts a scope around every await of its generator, never across a ``yield`` (the caller's
code between events is never cancelled by us). ``asyncio.timeout_at`` per await schedules and
cancels a timer each time: a ``TimerHandle``, a heap push among the loop's other timers and a
cancellation, several microseconds per event. Here one timer lives as long as the deadline, and
entering or leaving a scope only notes which task is inside."""

from __future__ import annotations

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
        "_cancelling",
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
        self._handle: asyncio.TimerHandle | asyncio.Handle | None = None
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
        elif self._handle is None:
            self._handle = task.get_loop().call_at(self._when, self._on_time)
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
        """Drop the timer (the deadline no longer matters)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
