"""The chaos machine: a hypothesis ``RuleBasedStateMachine`` that builds and drops interfaces
and groups, starts concurrent calls and streams (on one running event loop, and sync from
threads), cancels them at random, and injects faults into a real ``LLMTestServer``: 429s with
odd ``Retry-After`` values, rate-limit resets of any size, 5xx, in-stream errors and stalls.
After every step the invariants hold:

- every call that ended, ended with its answer or with an ``LLMError`` (never a raw exception),
  within its ``total_timeout`` (plus scheduling slack), and a call whose request the server
  answered long before its deadline got that answer;
- no call is still running past its deadline;
- every key's cooldown is a finite number of seconds;
- once every call ended (``settle``): nothing in flight on any key or group member, no
  half-open trial held by nobody, a group's usage counts exactly the calls it answered, and
  with Redis, no lease is left there.

Calls stay in flight across steps: they run as tasks on a loop of a background thread (or on
threads of their own), and every wait on them is bounded.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import threading
import time
import uuid
import weakref
from collections import Counter, deque
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from llmplug import APIKeyPool, Done, LLMError, LLMInterface, ModelGroup
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest, Reply
from llmplug.testing._server import ReplyLike

from ._matrix import WIRES, kind_of

__all__ = ["ChaosMachine", "LoopThread"]

T = TypeVar("T")

#: Every interface's total_timeout: every call must end by then.
LIMIT = 1.5
#: What "by then" allows for on a shared 2-core machine: a bound, not a speed check.
SLACK = 1.0
#: A request answered this long before its call's deadline must have reached the caller.
ANSWER_MARGIN = 0.5
MAX_TARGETS = 6
MAX_FLIGHTS = 48

#: Retry-After values a provider (or a broken proxy) may send.
RETRY_AFTER = ["0", "0.05", "0.3", "1.5", "99999", "1e999", "inf", "-inf", "-1", "nan", "soon", ""]
#: x-ratelimit-reset-requests values on a successful reply that says nothing is left.
RESETS = ["0.2", "1s", "6m0s", "1e999", "inf", "nan", "-5", "999999999999h"]


class LoopThread:
    """An event loop running in a thread of its own, for calls that outlive a step."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-loop")
        self.thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(shutdown(), timeout=10.0)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10.0)
            if not self.thread.is_alive():
                self.loop.close()


@dataclass
class Flight:
    """One call, from its start to its outcome."""

    prompt: str
    target: str
    stream: bool
    sync: bool
    started: float
    limit: float
    future: Future[tuple[str, str]] = field(repr=False)
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    checked: bool = False
    #: A stream's answer, once its Done reached the caller.
    answer: str | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.limit


class Script:
    """The server's handler: the next injected fault goes to the next request, whoever sends
    it; every other request is answered. What each prompt last got, and when, is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: deque[tuple[str, ReplyLike | None]] = deque()
        #: prompt -> (what its last request got, when)
        self.last: dict[str, tuple[str, float]] = {}

    def push(self, kind: str, reply: ReplyLike | None) -> None:
        with self._lock:
            self.faults.append((kind, reply))

    def __call__(self, rec: RecordedRequest) -> ReplyLike | None:
        prompt = rec.last_user_text
        if prompt.startswith("warm"):
            return None  # not one of the calls under test: it takes no fault
        with self._lock:
            kind, reply = self.faults.popleft() if self.faults else ("answer", None)
            if kind.startswith("reset"):
                # A successful reply whose rate-limit headers say nothing is left until then.
                assert isinstance(reply, Reply)
                reply = Reply(text=f"echo: {prompt}", headers=reply.headers)
            self.last[prompt] = (kind, time.monotonic())
        return reply


class ChaosMachine(RuleBasedStateMachine):
    """See the module. ``redis`` (a subclass's) puts every interface on a Redis backend."""

    #: A RedisServer when the Redis variant runs (restartable), else None.
    redis: Any = None

    targets = Bundle("targets")

    def __init__(self, server: LLMTestServer, prefix: str = "chaos") -> None:
        super().__init__()
        self.server = server
        # Redis keys of this example only: a key cooled (or a lease leaked) by an earlier
        # example must not change this one, nor its replay.
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:8]}"
        server.clear()
        self.script = Script()
        server.handler = self.script
        self.loops = LoopThread()
        self.threads = ThreadPoolExecutor(16, thread_name_prefix="chaos-sync")
        self.live: dict[str, Any] = {}
        #: Every interface and group ever made, held weakly: dropped ones leave when collected.
        self.made: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        #: Groups that are members of another group (their usage counts the outer's calls).
        self.nested: set[str] = set()
        self.flights: list[Flight] = []
        #: Calls started since the last settle.
        self.started = 0
        self.violations: list[str] = []
        #: Calls each target answered (their outcome, as the caller saw it).
        self.answered: Counter[str] = Counter()
        self.names = itertools.count()

    # -- building and dropping -----------------------------------------------------------------

    def _backend(self, local: bool) -> Mapping[str, Any] | None:
        if self.redis is None:
            return None
        return {
            "kind": "redis",
            "url": self.redis.url,
            "prefix": self.prefix,
            "on_unavailable": "local" if local else "fail",
            "retry_interval": 0.05,
        }

    @initialize(
        target=targets,
        wire=st.sampled_from(sorted(WIRES)),
        keys=st.integers(1, 2),
        retries=st.sampled_from([0, 2]),
        local=st.booleans(),
    )
    def first_interface(self, wire: str, keys: int, retries: int, local: bool) -> str:
        return self._interface(wire, keys, retries, local)

    @initialize(target=targets, wire=st.sampled_from(sorted(WIRES)), local=st.booleans())
    def a_group(self, wire: str, local: bool) -> str:
        """A group of two fresh members that do not retry (every fault moves a call on)."""
        a = self._interface(wire, 1, 0, local)
        b = self._interface(wire, 2, 0, local)
        return self._group(a, b, 3)

    @precondition(lambda self: len(self.live) < MAX_TARGETS)
    @rule(
        target=targets,
        wire=st.sampled_from(sorted(WIRES)),
        keys=st.integers(1, 2),
        retries=st.sampled_from([0, 2]),
        local=st.booleans(),
    )
    def add_interface(self, wire: str, keys: int, retries: int, local: bool) -> str:
        return self._interface(wire, keys, retries, local)

    def _interface(self, wire: str, keys: int, retries: int, local: bool) -> str:
        name = f"i{next(self.names)}"
        llm = LLMInterface(
            APIKeyPool([f"sk-{name}-{k}" for k in range(keys)], f"p{name}", shared=False),
            f"m-{name}",
            self.server.base_url,
            max_retries=retries,
            retry_delay=0.001,
            rate_limit_capacity=10_000,
            rate_limit_refill_rate=10_000.0,
            wire=WIRES[wire],
            total_timeout=LIMIT,
            key_wait_timeout=LIMIT,
            rate_limit_backend=self._backend(local),
        )
        self.live[name] = self.made[name] = llm
        # One call first: an interface's first call loads the CA store (~50 ms of CPU, once
        # per interface since test_threads.py's TLS test), which on a shared 2-core machine
        # under load can spend much of a call's 1.5 s before its request is sent.
        with suppress(LLMError):
            self.loops.run(llm.chat(f"warm {name}"))
        return name

    @precondition(lambda self: len(self.live) < MAX_TARGETS)
    @rule(target=targets, a=targets, b=targets, threshold=st.integers(1, 3))
    def add_group(self, a: str, b: str, threshold: int) -> str:
        return self._group(a, b, threshold)

    def _group(self, a: str, b: str, threshold: int) -> str:
        name = f"g{next(self.names)}"
        if a == b or a not in self.live or b not in self.live:
            return name  # nothing made: later rules skip a name that is not live
        group = ModelGroup(
            [self.live[a], self.live[b]],
            name=name,
            failure_threshold=threshold,
            cooldown=0.2,
        )
        self.nested.update(n for n in (a, b) if n.startswith("g"))
        self.live[name] = self.made[name] = group
        return name

    @rule(name=consumes(targets))
    def drop(self, name: str) -> None:
        """``del`` and a collection: calls in flight keep what they use; nothing of a dropped
        interface may touch a live one."""
        self.live.pop(name, None)
        gc.collect()

    # -- calls ---------------------------------------------------------------------------------

    # Counted by steps, not by which calls are still running: replays must draw alike.
    @precondition(lambda self: self.started < MAX_FLIGHTS)
    @rule(name=targets, n=st.sampled_from([1, 3, 16]), stream=st.booleans(), sync=st.booleans())
    def start_calls(self, name: str, n: int, stream: bool, sync: bool) -> None:
        target = self.live.get(name)
        if target is None:
            return
        self.started += n
        for _ in range(n):
            prompt = f"q{next(self.names)}"
            limit = LIMIT
            flight = Flight(prompt, name, stream, sync, time.monotonic(), limit, Future())
            if sync:
                flight.future = self.threads.submit(asyncio.run, _call(target, prompt, stream))
            else:
                flight.future = self.loops.submit(_tracked(flight, target, prompt, stream))
            self.flights.append(flight)

    @rule(pick=st.integers(0, 1 << 16))
    def cancel(self, pick: int) -> None:
        """Cancel one of the async calls still running (which ones are depends on timing, so
        the choice is drawn whatever it turns out to be: replays draw the same data)."""
        running = [f for f in self.flights if not f.sync and not f.future.done()]
        if not running:
            return
        task = running[pick % len(running)].task
        if task is not None:
            self.loops.loop.call_soon_threadsafe(task.cancel)

    # -- faults --------------------------------------------------------------------------------

    @rule(value=st.sampled_from(RETRY_AFTER), ms=st.booleans())
    def inject_429(self, value: str, ms: bool) -> None:
        header = "retry-after-ms" if ms else "retry-after"
        self.script.push(
            f"429 {header}={value}", Error(status=429, message="slow", headers={header: value})
        )

    @rule(value=st.sampled_from(RESETS))
    def inject_used_up(self, value: str) -> None:
        headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": value}
        self.script.push(f"reset {value}", Reply(headers=headers))

    @rule(status=st.sampled_from([500, 502, 503, 529]))
    def inject_5xx(self, status: int) -> None:
        self.script.push(f"{status}", Error(status=status, message="down"))

    @rule(status=st.sampled_from([400, 503]), after=st.sampled_from([0, 2]))
    def inject_in_stream(self, status: int, after: int) -> None:
        # The status said as every wire can read it: a numeric code (Chat, Responses), and the
        # error type Anthropic gives that status.
        error = Error(status=status, message="mid-stream", code=status, in_stream_after=after)
        self.script.push(f"in-stream {status} after {after}", error)

    @rule()
    def inject_stall(self) -> None:
        self.script.push("stall", Fault("stall_after_headers", seconds=30.0))

    @rule()
    def release_stalls(self) -> None:
        self.server.release_stalls()

    @precondition(lambda self: self.redis is not None)
    @rule()
    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis.start()

    # -- settling and the invariants -----------------------------------------------------------

    @rule()
    def settle(self) -> None:
        """Let every call end (stalls released), then read the books."""
        self.server.release_stalls()
        self._wait_all()
        # A call still running is the finding: its books are not final yet.
        assert not self.violations, "\n".join(self.violations)
        self.script.faults.clear()
        self.started = 0
        self._books()

    def _wait_all(self) -> None:
        for f in self.flights:
            left = f.deadline + SLACK - time.monotonic()
            try:
                f.future.result(max(0.0, left))
            except FutureTimeout:
                self.violations.append(f"{f}: still running {SLACK}s past its total_timeout")
            except BaseException:
                pass
        self._reap()
        self.flights = [f for f in self.flights if not f.future.done()]

    def _reap(self) -> None:
        for f in self.flights:
            if f.checked or not f.future.done():
                continue
            f.checked = True
            try:
                kind, text = f.future.result()
            except BaseException as exc:
                self.violations.append(f"{f}: raised {type(exc).__name__}: {exc}")
                continue
            got, when = self.script.last.get(f.prompt, ("", 0.0))
            # A released stall ends as the server's short answer.
            expected = "a b c" if got == "stall" else f"echo: {f.prompt}"
            if kind == "ok" and text != expected:
                self.violations.append(f"{f}: answered {text!r}")
            if kind in ("raw", "no Done"):
                self.violations.append(f"{f}: {kind}: {text}")
            if kind == "ok":
                self.answered[f.target] += 1
            answered = got == "answer" or got.startswith("reset")
            if kind == "APITimeoutError" and answered and when < f.deadline - ANSWER_MARGIN:
                self.violations.append(
                    f"{f}: the server answered it {f.deadline - when:.2f}s before its "
                    "deadline, and it timed out"
                )

    @invariant()
    def calls_end_in_time_with_answers_or_documented_errors(self) -> None:
        self._reap()
        now = time.monotonic()
        for f in self.flights:
            if not f.future.done() and now > f.deadline + SLACK:
                self.violations.append(f"{f}: still running {SLACK}s past its total_timeout")
                f.checked = True
        assert not self.violations, "\n".join(self.violations)

    @invariant()
    def cooldowns_are_finite(self) -> None:
        for name, obj in list(self.made.items()):
            if isinstance(obj, LLMInterface):
                for row in obj.key_pool.status():
                    seconds = row["cooldown_seconds"]
                    assert math.isfinite(seconds), f"{name}: a key cools for {seconds}s"

    def _books(self) -> None:
        """Every call ended: nothing may be left in flight, and a group's usage counts exactly
        the calls it answered."""
        for name, obj in list(self.made.items()):
            if isinstance(obj, LLMInterface):
                flying = [row["in_flight"] for row in obj.key_pool.status()]
                assert not any(flying), f"{name}: keys in flight {flying} after every call ended"
                self._redis_leases(name, obj)
                continue
            for member, row in obj.status().items():
                assert row["in_flight"] == 0, f"{name}: {member} in flight after every call"
            stuck = [m.name for m in obj.all_members if m.trial and m.in_flight == 0]
            assert not stuck, f"{name}: a half-open trial held by no call: {stuck}"
            if name not in self.nested:
                calls, answered = obj.usage.calls, self.answered[name]
                assert calls == answered, f"{name}: usage counts {calls} of {answered} answers"

    def _redis_leases(self, name: str, llm: LLMInterface) -> None:
        if self.redis is None:
            return
        health = llm.key_pool.health
        limiter = llm.rate_limiter
        try:
            self.loops.run(limiter.acquire(1.0))  # type: ignore[attr-defined]
            self.loops.run(limiter.conn.drain())  # type: ignore[attr-defined]
        except LLMError:
            return  # Redis is resting after the restart: nothing to read now
        leases = [int(self.redis.cli("zcard", key)) for key in health.lease_keys]  # type: ignore[union-attr]
        assert not any(leases), f"{name}: leases left in Redis {leases}"

    def teardown(self) -> None:
        try:
            self.server.release_stalls()
            self._wait_all()
            conns = {}
            for obj in list(self.made.values()):
                if isinstance(obj, LLMInterface):
                    self.loops.run(obj.aclose())
                    conn = getattr(obj.rate_limiter, "conn", None)
                    if conn is not None:
                        conns[id(conn)] = conn
            for conn in conns.values():  # this loop's Redis clients (one per process and URL)
                self.loops.run(conn.aclose())
        finally:
            self.threads.shutdown(wait=True, cancel_futures=True)
            self.loops.close()
            self.server.handler = None


async def _call(
    target: Any, prompt: str, stream: bool, flight: Flight | None = None
) -> tuple[str, str]:
    """One call's outcome: ("ok", text), or (the error's kind, its text) for an LLMError; a
    stream is read to its Done and left there, as ``llmplug chat`` does."""
    try:
        if stream:
            async with aclosing(target.chat_stream(prompt)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        if flight is not None:
                            flight.answer = event.completion.text
                        return "ok", event.completion.text
            return "no Done", "the stream ended without Done or an error"
        return "ok", (await target.chat(prompt)).text
    except LLMError as exc:
        return kind_of(exc), str(exc)[:300]


async def _tracked(flight: Flight, target: Any, prompt: str, stream: bool) -> tuple[str, str]:
    flight.task = asyncio.current_task()
    try:
        return await _call(target, prompt, stream, flight)
    except asyncio.CancelledError:
        # Cancelled while closing a stream whose Done it had: the caller had its answer.
        if flight.answer is not None:
            return "ok", flight.answer
        return "cancelled", ""
