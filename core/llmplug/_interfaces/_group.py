"""A model group: several interfaces (of any wire) serving one model, used as one interface.

Which member takes a call is the ``select_member`` hook's choice (group strategies are plugins,
like key strategies). A member that fails with a retryable exhaustion hands the call to the
group's other members, then to ``fallbacks``; a call too large for a member's context window
goes to ``context_window_fallbacks`` without being sent to it. A stream never moves once an
event reached the caller. Each member keeps its own pool, limits and retries: the group adds
no retry of its own, only the move to another member."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from llmplug._engine._blame import plugin_error, raising_plugin
from llmplug._engine._members import Chatty, GroupCall, Member
from llmplug._engine._registry import Registry, default_registry
from llmplug._engine._wrap import CallWrapper, group_call, wrapper_of
from llmplug._limits._estimate import estimate_call_tokens
from llmplug._vocab._classify import kind_of
from llmplug._vocab._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
    NoKeyAvailableError,
    StreamError,
)
from llmplug._vocab._inputs import as_messages, as_tools
from llmplug._vocab._types import Completion, StreamEvent
from llmplug._vocab._usage import UsageTracker

from ._interface import DEFAULT_CONTEXT_WINDOW

__all__ = ["GroupCall", "Member", "ModelGroup", "NoMemberAvailableError", "is_context_overflow"]


class NoMemberAvailableError(NoKeyAvailableError):
    """Every member of a group (and every fallback) is ejected or too small for the call;
    ``members`` is the group's :meth:`ModelGroup.status` at that moment. A
    :class:`NoKeyAvailableError`, so a group used as another's fallback hands on in turn."""

    def __init__(self, message: str, *, members: dict[str, dict[str, Any]], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.members = members


class ModelGroup:
    """Several interfaces serving one model, usable wherever an interface is.

    ``strategy`` names the group strategy (``"weighted"``, ``"least_loaded"``,
    ``"lowest_latency"``, ``"cost"``, or one a plugin provides through ``select_member``);
    ``weights`` go with ``members``. ``fallbacks`` are tried in order once every member failed
    with a retryable exhaustion; ``context_window_fallbacks`` take calls too large for the
    members. A member whose calls fail ``failure_threshold`` times in a row is ejected for
    ``cooldown`` seconds (by ``clock``), then gets one trial call. While every member is
    ejected, a call waits up to ``member_wait_timeout`` (and its ``total_timeout``) for one to
    come back. A call's ``total_timeout`` (without one, that of the member it starts on) covers
    every member it is handed to."""

    def __init__(
        self,
        members: Sequence[Chatty],
        *,
        name: str = "group",
        strategy: str = "weighted",
        weights: Sequence[float] | None = None,
        fallbacks: Sequence[Chatty] = (),
        context_window_fallbacks: Sequence[Chatty] = (),
        failure_threshold: int = 3,
        cooldown: float = 30.0,
        member_wait_timeout: float = 60.0,
        registry: Registry | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache: Mapping[str, Any] | bool | None = None,
    ) -> None:
        if not members:
            raise ConfigError(f"group {name!r}: no members", field="members")
        if weights is not None:
            if len(weights) != len(members):
                raise ConfigError(
                    f"group {name!r}: {len(weights)} weights for {len(members)} members",
                    field="weights",
                )
            for i, w in enumerate(weights):
                if not w > 0:  # NaN too
                    raise ConfigError(f"weights[{i}] must be > 0, got {w!r}", field=f"weights[{i}]")
        if failure_threshold < 1:
            raise ConfigError(
                f"failure_threshold must be >= 1, got {failure_threshold!r}",
                field="failure_threshold",
            )
        if not cooldown >= 0:
            raise ConfigError(f"cooldown must be >= 0 seconds, got {cooldown!r}", field="cooldown")
        if not 0 <= member_wait_timeout < float("inf"):
            raise ConfigError(
                f"member_wait_timeout must be >= 0 seconds, got {member_wait_timeout!r}",
                field="member_wait_timeout",
            )
        self.name = name
        self.strategy = strategy
        # The members' counters and circuits are shared by every thread and loop that calls the
        # group (a sync llm_function runs each call on a loop of its own thread): every read and
        # change of them happens under this lock, and none of them awaits.
        self._lock = threading.RLock()
        self.members = [
            Member(m, w) for m, w in zip(members, weights or [1.0] * len(members), strict=True)
        ]
        self.fallbacks = [Member(m) for m in fallbacks]
        self.context_window_fallbacks = [Member(m) for m in context_window_fallbacks]
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        #: How long a call waits for an ejected member to come back before it fails with
        #: :class:`NoMemberAvailableError` (as ``key_wait_timeout`` for an interface's keys).
        self.member_wait_timeout = member_wait_timeout
        self._waiters = _Waiters()
        #: The circuit's clock (monotonic seconds); another one simulates time.
        self.clock = clock
        self.registry = registry or default_registry()
        if not self.registry.has_group_strategy(strategy, self):
            raise ConfigError(
                f"strategy must be one a plugin provides: no plugin provides the group "
                f"strategy {strategy!r}",
                field="strategy",
            )
        #: Usage of every call the group made, whichever member answered.
        self.usage = UsageTracker()
        # Set by llm_function when a member rejected json_schema output: from then on the
        # schema is asked for in the prompt, which every member's wire can carry.
        self.json_schema_unsupported = False
        windows = [m.context_window for m in self.all_members if m.context_window is not None]
        #: The largest window a call can reach (what compaction measures against).
        self.context_window: int = max(windows) if windows else DEFAULT_CONTEXT_WINDOW
        # The estimate costs a JSON encoding of the prompt: made only when it can change a route.
        small = [m.context_window for m in self.members if m.context_window is not None]
        self._estimates = bool(self.context_window_fallbacks) and bool(small)
        #: What wraps every call of the group (a response cache of its own), or None.
        self.call_wrapper: CallWrapper | None = wrapper_of(self.registry, "cache", cache, self)

    # -- what decorators and the CLI read of an interface -------------------------------------

    @property
    def provider_id(self) -> str:
        return "group"

    @property
    def model_name(self) -> str:
        return self.name

    @property
    def all_members(self) -> list[Member]:
        """Every member a call can reach: the members, the fallbacks, the context-window
        fallbacks, in that order."""
        return [*self.members, *self.fallbacks, *self.context_window_fallbacks]

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.members)
        return f"ModelGroup({self.name!r}, strategy={self.strategy!r}, members=[{names}])"

    def status(self) -> dict[str, dict[str, Any]]:
        """Each member's and fallback's circuit and load, by name: ``state``, ``failures`` (in
        a row), ``errors`` (failed calls in all), ``in_flight``, ``requests``, ``latency_ms``
        and ``ejected_for_s``."""
        with self._lock:
            return self._status()

    def _status(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        out = {}
        for m in self.all_members:
            m.usable(now)  # an elapsed cooldown shows as half_open
            out[m.name] = {
                "state": m.state,
                "failures": m.failures,
                "errors": m.errors,
                "in_flight": m.in_flight,
                "requests": m.requests,
                "latency_ms": None if m.latency is None else round(m.latency * 1000, 1),
                "ejected_for_s": round(max(0.0, m.open_until - now), 1)
                if m.state == "open"
                else 0.0,
            }
        return out

    def available(self, call: GroupCall) -> list[Member]:
        """The members that may take ``call`` now: not ejected, and large enough for it."""
        now = self.clock()
        with self._lock:
            return [m for m in self.members if m.usable(now) and m.fits(call.tokens)]

    # -- routing --------------------------------------------------------------------------------

    def _plan(self, call: GroupCall) -> tuple[list[Member], _Ticket]:
        """The members to try, in order: the strategy's choice, the other usable members,
        then the fallbacks (or, for a call too large for every member, the larger ones); and
        the first one started (so no other thread takes a half-open member's one trial)."""
        with self._lock:
            plan = self._route(call)
            return plan, self._start(plan[0])

    async def _first(self, call: GroupCall, deadline: _Deadline) -> tuple[list[Member], _Ticket]:
        """:meth:`_plan`, waiting while every member that could take the call is ejected and
        the first comes back (or a half-open trial ends) within ``member_wait_timeout`` and
        the call's deadline, as an interface waits for a cooling key."""
        until = time.monotonic() + min(self.member_wait_timeout, deadline.left())
        while True:
            with self._lock:
                try:
                    return self._plan(call)
                except NoMemberAvailableError:
                    left = until - time.monotonic()
                    back, trial = self._comeback(call)
                    # A running trial may end any moment; else only a comeback in time helps.
                    if left <= 0 or (not trial and (back is None or back > left)):
                        raise
                    waiter = self._waiters.add()
            try:
                # Woken at every circuit change (a trial's end); else at the first comeback.
                await waiter.wait(left if back is None else min(back, left))
            finally:
                with self._lock:
                    self._waiters.discard(waiter)

    def _comeback(self, call: GroupCall) -> tuple[float | None, bool]:
        """Seconds until the first ejected member that fits the call may be tried again
        (None: none is open), and whether one is on its half-open trial (its end decides)."""
        now = self.clock()
        fitting = [m for m in (*self.members, *self.fallbacks) if m.fits(call.tokens)]
        opens = [max(0.0, m.open_until - now) for m in fitting if m.state == "open"]
        trial = any(m.state == "half_open" and m.trial for m in fitting)
        return (min(opens) if opens else None), trial

    def _route(self, call: GroupCall) -> list[Member]:
        candidates = call.candidates = self.available(call)
        plan: list[Member] = []
        if candidates:
            first = self._select(call)
            plan.append(first)
            plan.extend(m for m in candidates if m is not first)
        now = self.clock()
        if call.tokens is not None and not any(m.fits(call.tokens) for m in self.members):
            extra = self.context_window_fallbacks
        else:
            extra = self.fallbacks
        plan.extend(m for m in extra if m.usable(now) and m.fits(call.tokens))
        if not plan:
            raise NoMemberAvailableError(
                f"group {self.name!r}: no member can take the call now: {self._describe()}",
                keys=[],
                members=self.status(),
                provider="group",
                model=self.name,
            )
        return plan

    def _select(self, call: GroupCall) -> Member:
        """The strategy's choice; whatever its plugin raises or returns amiss is a
        :class:`PluginError` naming the plugin, as for every other hook."""
        hook = self.registry.hot.select_member
        try:
            first = hook(strategy=self.strategy, group=self, call=call)
        except Exception as exc:
            plugin = raising_plugin(self.registry, "select_member", exc)
            doing = f"choosing a member of group {self.name!r}"
            raise plugin_error(exc, plugin, doing, "group", self.name) from exc
        if first is None:
            raise ConfigError(f"no plugin provides the group strategy {self.strategy!r}")
        if not isinstance(first, Member) or not any(first is m for m in call.candidates):
            raise plugin_error(
                ValueError(f"it returned {first!r}, not one of the candidates"),
                None,
                f"choosing a member of group {self.name!r} by strategy {self.strategy!r}",
                "group",
                self.name,
            )
        return first

    def _describe(self) -> str:
        return ", ".join(f"{n} {s['state']}" for n, s in self.status().items())

    def _larger(self, tokens: int | None, tried: Member) -> list[Member]:
        """After a provider's context-length error: the context-window fallbacks larger than
        the member that refused."""
        now = self.clock()
        size = tried.context_window or 0
        return [
            m
            for m in self.context_window_fallbacks
            if m.usable(now) and (m.context_window is None or m.context_window > size)
        ]

    def _call(self, messages: Any, tools: Any, params: dict[str, Any], stream: bool) -> GroupCall:
        tokens = None
        if self._estimates:
            tokens = estimate_call_tokens(as_messages(messages), as_tools(tools), params)
        return GroupCall(messages=messages, params=params, stream=stream, tokens=tokens)

    # -- the books of one member's part in a call (each under the lock, none awaits) -----------

    def _start(self, m: Member) -> _Ticket:
        with self._lock:
            m.in_flight += 1
            m.requests += 1
            trial = m.state == "half_open"
            if trial:
                m.trial = True
        return _Ticket(m, trial)

    def _ended(self, t: _Ticket) -> None:
        with self._lock:
            t.member.in_flight -= 1

    def _no_verdict(self, t: _Ticket) -> None:
        with self._lock:
            if t.trial:
                t.member.trial = False  # the trial is free again for the next call
                self._waiters.wake()

    def _succeeded(self, t: _Ticket) -> None:
        took = time.perf_counter() - t.t0
        m = t.member
        with self._lock:
            m.latency = took if m.latency is None else 0.8 * m.latency + 0.2 * took
            if not t.trial and t.epoch != m.epoch:
                return  # began before the circuit last opened: the trial decides, not this
            m.failures = 0
            if m.state != "closed":
                m.state = "closed"
                self._waiters.wake()
            if t.trial:
                m.trial = False

    def _failed(self, t: _Ticket) -> None:
        m = t.member
        with self._lock:
            m.errors += 1
            if not t.trial and t.epoch != m.epoch:
                return
            m.failures += 1
            if t.trial or m.failures >= self.failure_threshold:
                m.state = "open"
                m.open_until = self.clock() + self.cooldown
                m.epoch += 1
            if t.trial:
                m.trial = False
            self._waiters.wake()  # a new open_until to wait for

    def _verdict(self, t: _Ticket, exc: LLMError) -> None:
        """A failure that cannot be handed on (the caller gets it): it counts against the
        member only when another member would have been tried for it."""
        if moves_on(exc):
            self._failed(t)
        else:
            self._no_verdict(t)

    # -- the calls ------------------------------------------------------------------------------

    def _hand_on(
        self,
        t: _Ticket,
        exc: LLMError,
        call: GroupCall,
        plan: list[Member],
        i: int,
        deadline: _Deadline,
    ) -> _Ticket | None:
        """After ``t.member`` (``plan[i - 1]``) failed with ``exc`` before any output: the
        next member in ``plan``, started (its index is ``plan.index``); None leaves the error
        to the caller. A context overflow re-plans onto the larger members and leaves the
        member's circuit alone; a retryable exhaustion counts against it; anything else is the
        caller's. A member that can no longer take the call (others found it failing
        meanwhile, or took its one half-open trial) is passed over. Once the call's
        ``total_timeout`` has passed, the group's timeout error is raised instead. What chat
        and chat_stream share."""
        m = t.member
        if is_context_overflow(exc):
            self._no_verdict(t)  # the member is healthy; the call was too large for it
            with self._lock:
                plan[i:] = [x for x in self._larger(call.tokens, m) if x not in plan[:i]]
        elif moves_on(exc):
            self._failed(t)
        else:
            self._no_verdict(t)
            return None
        if deadline.passed():
            raise deadline.error(self, exc) from exc
        with self._lock:
            now = self.clock()
            for j in range(i, len(plan)):
                if plan[j].usable(now):
                    del plan[i:j]  # passed over: plan[i] is the one started
                    return self._start(plan[i])
        return None

    async def chat(self, messages: Any, tools: Any = None, **params: Any) -> Completion:
        """Like :meth:`LLMInterface.chat`, answered by one member (see the class)."""
        if self.call_wrapper is not None:
            wrapped = group_call(self, messages, tools, params, False)
            return await self.call_wrapper.complete(
                wrapped, lambda _: self._chat(messages, tools, **params)
            )
        return await self._chat(messages, tools, **params)

    def chat_stream(
        self, messages: Any, tools: Any = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        """Like :meth:`LLMInterface.chat_stream`; a member that fails before its first event
        hands the call on exactly as :meth:`chat` would, one that fails after it raises
        (nothing is sent twice). The call's books are done before its ``Done`` is yielded: a
        reader that stops there has still had a success."""
        if self.call_wrapper is not None:
            wrapped = group_call(self, messages, tools, params, True)
            return self.call_wrapper.stream(
                wrapped, lambda _: self._chat_stream(messages, tools, **params)
            )
        return self._chat_stream(messages, tools, **params)

    async def _chat(self, messages: Any, tools: Any = None, **params: Any) -> Completion:
        call = self._call(messages, tools, params, False)
        deadline = _Deadline(params.get("total_timeout"))
        plan, nxt = await self._first(call, deadline)
        deadline.start(getattr(nxt.member.llm, "total_timeout", None))
        i = 0
        while True:  # until a member answers, or _hand_on leaves the error to the caller
            t = nxt
            i += 1
            try:
                completion = await t.member.llm.chat(messages, tools, **deadline.params(params))
            except LLMError as exc:
                if (after := self._hand_on(t, exc, call, plan, i, deadline)) is None:
                    raise
                nxt = after
                continue
            except BaseException:
                self._no_verdict(t)  # cancelled: no verdict on the member
                raise
            finally:
                self._ended(t)
            self._succeeded(t)
            self.usage.add(completion.usage, completion.cost)
            return completion

    async def _chat_stream(
        self, messages: Any, tools: Any = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        call = self._call(messages, tools, params, True)
        deadline = _Deadline(params.get("total_timeout"))
        plan, nxt = await self._first(call, deadline)
        deadline.start(getattr(nxt.member.llm, "total_timeout", None))
        i = 0
        while True:
            t = nxt
            i += 1
            emitted = False
            judged = False
            try:
                stream = t.member.llm.chat_stream(messages, tools, **deadline.params(params))
                async with aclosing(stream) as events:
                    async for event in events:
                        done = getattr(event, "completion", None)
                        if done is not None:
                            judged = True
                            self._succeeded(t)
                            self.usage.add(done.usage, done.cost)
                        emitted = True
                        yield event
            except LLMError as exc:
                if judged:
                    raise
                if emitted:
                    self._verdict(t, exc)
                    raise
                if (after := self._hand_on(t, exc, call, plan, i, deadline)) is None:
                    raise
                nxt = after
                continue
            except BaseException:
                if not judged:
                    self._no_verdict(t)  # the caller left or was cancelled: no verdict
                raise
            finally:
                self._ended(t)
            return

    async def aclose(self) -> None:
        """Close every member and fallback (each closes only the HTTP client it made)."""
        for m in self.all_members:
            aclose = getattr(m.llm, "aclose", None)
            if aclose is not None:
                await aclose()

    async def __aenter__(self) -> ModelGroup:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def moves_on(error: LLMError) -> bool:
    """A retryable exhaustion: the member could not answer, the request was not at fault.
    Judged by the error's kind as the wire classified it (:data:`llmplug.ErrorKind`): a rate
    limit that outlasted the member's retries, a quota gone or a server failure counts; a bad
    request (or a refused key) is the caller's, and another member would refuse it too.
    A stream's error is judged as the kind it carries (an error event's code), or as the
    error that broke it: the same fault decides the same way streamed or not."""
    if isinstance(error, NoKeyAvailableError | APITimeoutError | APIConnectionError):
        return True
    kind = kind_of(error) if isinstance(error, APIStatusError | StreamError) else None
    if kind is not None:
        return kind in ("server", "rate_limit", "quota")
    cause = error.__cause__
    if isinstance(error, StreamError) and isinstance(cause, LLMError):
        return moves_on(cause)
    return False


def is_context_overflow(error: LLMError) -> bool:
    """A provider's "the prompt does not fit": the kind ``context_length``, as the wire
    classified the reply or the stream's error event."""
    if not isinstance(error, APIStatusError | StreamError):
        return False
    return kind_of(error) == "context_length"


class _Ticket:
    """One member's part in one call: when it started, whether it is the member's half-open
    trial, and the circuit's epoch it started in."""

    __slots__ = ("epoch", "member", "t0", "trial")

    def __init__(self, member: Member, trial: bool) -> None:
        self.member = member
        self.trial = trial
        self.epoch = member.epoch
        self.t0 = time.perf_counter()


class _Deadline:
    """A group call's ``total_timeout`` (the call's own, else that of the member it starts
    on), across every member it is handed to: each member is given what is left of it."""

    __slots__ = ("end", "total")

    def __init__(self, total: Any) -> None:
        self.total: float | None = None
        self.end: float | None = None
        self.start(total)

    def start(self, total: Any) -> None:
        # A value that is not a positive number is the member's to refuse (ConfigError).
        if self.total is None and isinstance(total, int | float) and total > 0:
            self.total = float(total)
            self.end = time.monotonic() + total

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.end is None:
            return params
        # A member given nothing left fails at once with its own timeout error.
        return {**params, "total_timeout": max(self.left(), 1e-3)}

    def error(self, group: ModelGroup, last: LLMError) -> APITimeoutError:
        return APITimeoutError(
            f"group {group.name!r}: the call took longer than total_timeout={self.total:g}s "
            f"(last: {type(last).__name__}: {last.message})",
            provider="group",
            model=group.name,
        )


class _Waiters:
    """Calls waiting for an ejected member, on any loops and threads: each waits on a future
    of its own loop, woken (thread-safely) whenever a circuit changes."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set: set[_Waiter] = set()

    def add(self) -> _Waiter:
        w = _Waiter()
        self._set.add(w)
        return w

    def discard(self, w: _Waiter) -> None:
        self._set.discard(w)

    def wake(self) -> None:
        for w in list(self._set):
            w.wake()


class _Waiter:
    __slots__ = ("fut", "loop")

    def __init__(self) -> None:
        import asyncio  # only once a call has to wait: `import llmplug` imports no asyncio

        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[None] = self.loop.create_future()

    def wake(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # closed meanwhile
            self.loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if not self.fut.done():
            self.fut.set_result(None)

    async def wait(self, seconds: float) -> None:
        """Until woken, or ``seconds`` passed (a member's cooldown ends by the clock)."""
        import asyncio

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.fut
