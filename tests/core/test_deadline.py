"""The stream's deadline: asyncio.timeout_at's behaviour around awaits, nothing outside them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from llmplug._engine._deadline import Deadline

#: Past every deadline below; a hang guard, not a speed check.
LONG = 10.0
SHORT = 0.05


def _at(delay: float) -> float:
    return asyncio.get_running_loop().time() + delay


@asynccontextmanager
async def _entered(scope: asyncio.Timeout | Deadline) -> AsyncIterator[None]:
    if isinstance(scope, Deadline):
        with scope:
            yield
    else:
        async with scope:
            yield


async def test_an_await_pending_at_the_deadline_raises_timeout() -> None:
    deadline = Deadline(_at(SHORT))
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(LONG)
    deadline.close()


async def test_an_await_done_before_the_deadline_is_left_alone() -> None:
    deadline = Deadline(_at(LONG))
    for _ in range(3):
        with deadline:
            await asyncio.sleep(0)
    deadline.close()


async def test_code_outside_the_scopes_is_never_cancelled() -> None:
    deadline = Deadline(_at(SHORT))
    with deadline:
        await asyncio.sleep(0)
    await asyncio.sleep(SHORT * 3)  # the caller's own code: the deadline passes meanwhile
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(LONG)  # the first await after it that waits is cut
    deadline.close()


async def test_a_scope_entered_late_cuts_its_first_await_that_waits_like_timeout_at() -> None:
    async def ready() -> str:
        return "buffered"  # returns without suspending, like a read of data already there

    when = _at(-1.0)
    for scope in (asyncio.timeout_at(when), Deadline(when)):
        with pytest.raises(TimeoutError):
            async with _entered(scope):
                assert await ready() == "buffered"
                await asyncio.sleep(LONG)
        if isinstance(scope, Deadline):
            scope.close()


async def test_a_cancel_from_outside_stays_a_cancel() -> None:
    deadline = Deadline(_at(LONG))
    entered = asyncio.Event()

    async def waiter() -> None:
        with deadline:
            entered.set()
            await asyncio.sleep(LONG)

    task = asyncio.create_task(waiter())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.close()


async def test_a_cancel_from_outside_at_the_deadline_stays_a_cancel() -> None:
    deadline = Deadline(_at(SHORT))

    async def waiter() -> None:
        with deadline:
            await asyncio.sleep(LONG)

    task = asyncio.create_task(waiter())
    loop = asyncio.get_running_loop()
    # Cancelled by someone else in the same loop turn as the deadline: not our TimeoutError.
    loop.call_at(_at(SHORT), task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.close()


async def test_scopes_may_be_entered_from_different_tasks() -> None:
    deadline = Deadline(_at(SHORT))

    async def step(wait: float) -> None:
        with deadline:
            await asyncio.sleep(wait)

    await asyncio.create_task(step(0))
    with pytest.raises(TimeoutError):
        await asyncio.create_task(step(LONG))
    deadline.close()


async def test_after_close_the_next_scope_arms_the_deadline_again() -> None:
    deadline = Deadline(_at(SHORT))
    with deadline:
        await asyncio.sleep(0)
    deadline.close()
    with pytest.raises(TimeoutError), deadline:
        await asyncio.sleep(LONG)
    deadline.close()


async def test_none_never_expires() -> None:
    deadline = Deadline(None)
    with deadline:
        await asyncio.sleep(SHORT)
    deadline.close()


async def test_a_timeout_inside_the_scope_is_not_ours() -> None:
    deadline = Deadline(_at(LONG))
    with pytest.raises(TimeoutError), deadline:
        async with asyncio.timeout(SHORT):
            await asyncio.sleep(LONG)
    # The scope is still usable: it did not take that timeout for its own.
    with deadline:
        await asyncio.sleep(0)
    deadline.close()
