"""A model group: several interfaces (of any wire) serving one model, used as one interface.

Which member takes a call is the ``select_member`` hook's choice (group strategies are plugins,
like key strategies). A member that fails with a retryable exhaustion hands the call to the
group's other members, then to ``fallbacks``; a call too large for a member's context window
goes to ``context_window_fallbacks`` without being sent to it. A stream never moves once an
event reached the caller. Each member keeps its own pool, limits and retries: the group adds
no retry of its own, only the move to another member."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Any, Protocol

import msgspec

from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
    NoKeyAvailableError,
    StreamError,
)
from ._estimate import estimate_call_tokens
from ._interface import DEFAULT_CONTEXT_WINDOW, _messages, _tools
from ._registry import Registry, default_registry
from ._types import Completion, StreamEvent
from ._usage import UsageTracker

__all__ = ["GroupCall", "Member", "ModelGroup", "NoMemberAvailableError", "is_context_overflow"]


class Chatty(Protocol):
    """What a group needs of a member: an interface, or another group."""

    async def chat(self, messages: Any, tools: Any = None, **params: Any) -> Completion: ...

    def chat_stream(
        self, messages: Any, tools: Any = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]: ...


class NoMemberAvailableError(NoKeyAvailableError):
    """Every member of a group (and every fallback) is ejected or too small for the call;
    ``members`` is the group's :meth:`ModelGroup.status` at that moment. A
    :class:`NoKeyAvailableError`, so a group used as another's fallback hands on in turn."""

    def __init__(self, message: str, *, members: dict[str, dict[str, Any]], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.members = members


class GroupCall(msgspec.Struct):
    """What a group strategy sees of a call: its messages and params as given, whether it
    streams, its token estimate (prompt plus output limit; None when the group has no
    context-window routing and did not estimate) and ``candidates``, the members that may take
    it now (never empty when a strategy is asked): the strategy returns one of them."""

    messages: Any
    params: dict[str, Any]
    stream: bool
    tokens: int | None = None
    candidates: list[Any] = msgspec.field(default_factory=list)


class Member:
    """One member of a group, with the group's view of its load, latency and health.

    ``state`` is the circuit: ``"closed"`` (in use), ``"open"`` (ejected until ``open_until``)
    or ``"half_open"`` (the cooldown passed: one trial call decides)."""

    __slots__ = (
        "context_window",
        "cost",
        "current",
        "errors",
        "failures",
        "in_flight",
        "latency",
        "llm",
        "name",
        "open_until",
        "requests",
        "state",
        "trial",
        "weight",
    )

    def __init__(self, llm: Chatty, weight: float = 1.0, name: str | None = None) -> None:
        if not weight > 0:
            raise ConfigError(f"a member's weight must be > 0, got {weight!r}", field="weight")
        self.llm = llm
        self.name = name or _label(llm)
        self.weight = float(weight)
        #: The member's context window (None: unknown, so never routed around).
        self.context_window: int | None = getattr(llm, "context_window", None)
        pricing = getattr(llm, "pricing", None)
        #: Input plus output price per million tokens (None: unpriced, ordered last by "cost").
        self.cost: float | None = None if pricing is None else pricing.input + pricing.output
        self.in_flight = 0
        self.requests = 0
        #: Exponentially weighted recent latency of successful calls, seconds (None: no call yet).
        self.latency: float | None = None
        #: The smooth weighted round-robin's running score (the "weighted" strategy's state).
        self.current = 0.0
        self.failures = 0  # in a row: what opens the circuit
        self.errors = 0  # in all: calls it failed and handed on
        self.state = "closed"
        self.open_until = 0.0
        self.trial = False

    def usable(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
        return self.state == "half_open" and not self.trial

    def fits(self, tokens: int | None) -> bool:
        return tokens is None or self.context_window is None or tokens <= self.context_window

    def __repr__(self) -> str:
        return f"Member({self.name!r}, state={self.state!r}, in_flight={self.in_flight})"


class ModelGroup:
    """Several interfaces serving one model, usable wherever an interface is.

    ``strategy`` names the group strategy (``"weighted"``, ``"least_loaded"``,
    ``"lowest_latency"``, ``"cost"``, or one a plugin provides through ``select_member``);
    ``weights`` go with ``members``. ``fallbacks`` are tried in order once every member failed
    with a retryable exhaustion; ``context_window_fallbacks`` take calls too large for the
    members. A member whose calls fail ``failure_threshold`` times in a row is ejected for
    ``cooldown`` seconds (by ``clock``), then gets one trial call."""

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
        registry: Registry | None = None,
        clock: Callable[[], float] = time.monotonic,
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

    def _plan(self, call: GroupCall) -> tuple[list[Member], float]:
        """The members to try, in order: the strategy's choice, the other usable members,
        then the fallbacks (or, for a call too large for every member, the larger ones); and
        the first one started (so no other thread takes a half-open member's one trial)."""
        with self._lock:
            plan = self._route(call)
            return plan, self._start(plan[0])

    def _route(self, call: GroupCall) -> list[Member]:
        candidates = call.candidates = self.available(call)
        plan: list[Member] = []
        if candidates:
            first = self.registry.hook.select_member(strategy=self.strategy, group=self, call=call)
            if first is None:
                raise ConfigError(f"no plugin provides the group strategy {self.strategy!r}")
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
            tokens = estimate_call_tokens(_messages(messages), _tools(tools), params)
        return GroupCall(messages=messages, params=params, stream=stream, tokens=tokens)

    def _start(self, m: Member) -> float:
        with self._lock:
            m.in_flight += 1
            m.requests += 1
            if m.state == "half_open":
                m.trial = True
        return time.perf_counter()

    def _ended(self, m: Member) -> None:
        with self._lock:
            m.in_flight -= 1

    def _no_verdict(self, m: Member) -> None:
        with self._lock:
            m.trial = False

    def _succeeded(self, m: Member, t0: float) -> None:
        took = time.perf_counter() - t0
        with self._lock:
            m.latency = took if m.latency is None else 0.8 * m.latency + 0.2 * took
            m.failures = 0
            m.state = "closed"
            m.trial = False

    def _failed(self, m: Member) -> None:
        with self._lock:
            m.failures += 1
            m.errors += 1
            if m.state == "half_open" or m.failures >= self.failure_threshold:
                m.state = "open"
                m.open_until = self.clock() + self.cooldown
            m.trial = False

    # -- the calls ------------------------------------------------------------------------------

    def _hand_on(
        self, m: Member, exc: LLMError, call: GroupCall, plan: list[Member], i: int
    ) -> tuple[int, float] | None:
        """After ``m`` (``plan[i - 1]``) failed with ``exc``: where in ``plan`` the call goes
        on, that member started, and its start time; None leaves the error to the caller. A
        context overflow re-plans onto the larger members and leaves ``m``'s circuit alone; a
        retryable exhaustion counts against it; anything else is the caller's. A member that
        can no longer take the call (others found it failing meanwhile, or took its one
        half-open trial) is passed over. What chat and chat_stream share; only failures come
        here."""
        if is_context_overflow(exc):
            self._no_verdict(m)  # the member is healthy; the call was too large for it
            with self._lock:
                plan[i:] = [x for x in self._larger(call.tokens, m) if x not in plan[:i]]
        elif moves_on(exc):
            self._failed(m)
        else:
            self._no_verdict(m)
            return None
        with self._lock:
            now = self.clock()
            for j in range(i, len(plan)):
                if plan[j].usable(now):
                    return j, self._start(plan[j])
        return None

    async def chat(self, messages: Any, tools: Any = None, **params: Any) -> Completion:
        """Like :meth:`LLMInterface.chat`, answered by one member (see the class)."""
        call = self._call(messages, tools, params, False)
        plan, t0 = self._plan(call)
        i = 0
        while True:  # until a member answers, or _hand_on leaves the error to the caller
            m = plan[i]
            i += 1
            try:
                completion = await m.llm.chat(messages, tools, **params)
            except LLMError as exc:
                if (after := self._hand_on(m, exc, call, plan, i)) is None:
                    raise
                i, t0 = after
                continue
            except BaseException:
                self._no_verdict(m)  # cancelled: no verdict on the member
                raise
            finally:
                self._ended(m)
            self._succeeded(m, t0)
            self.usage.add(completion.usage, completion.cost)
            return completion

    async def chat_stream(
        self, messages: Any, tools: Any = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]:
        """Like :meth:`LLMInterface.chat_stream`; a member that fails before its first event
        hands the call on, one that fails after it raises (nothing is sent twice)."""
        call = self._call(messages, tools, params, True)
        plan, t0 = self._plan(call)
        i = 0
        while True:
            m = plan[i]
            i += 1
            emitted = False
            try:
                async with aclosing(m.llm.chat_stream(messages, tools, **params)) as events:
                    async for event in events:
                        emitted = True
                        yield event
                        done = getattr(event, "completion", None)
                        if done is not None:
                            self.usage.add(done.usage, done.cost)
            except LLMError as exc:
                if emitted or isinstance(exc, StreamError):
                    self._failed(m)
                    raise
                if (after := self._hand_on(m, exc, call, plan, i)) is None:
                    raise
                i, t0 = after
                continue
            except BaseException:
                self._no_verdict(m)  # the caller left or was cancelled: no verdict on the member
                raise
            finally:
                self._ended(m)
            self._succeeded(m, t0)
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
    A 429 that outlasted the member's retries counts (the provider is out of quota or
    capacity); every other 4xx is the request's, and another member would refuse it too."""
    if isinstance(error, NoKeyAvailableError | APITimeoutError | APIConnectionError):
        return True
    if isinstance(error, APIStatusError) and error.status is not None:
        return error.status >= 500 or error.status in (408, 429)
    return False


_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|prompt is too long|too many tokens", re.I
)


def is_context_overflow(error: LLMError) -> bool:
    """A provider's "the prompt does not fit" (400 ``context_length_exceeded``, or said in
    words)."""
    if not isinstance(error, APIStatusError) or error.status not in (400, 413, 422):
        return False
    code = getattr(error, "code", None)
    return code == "context_length_exceeded" or bool(_OVERFLOW.search(error.message or ""))


def _label(llm: Any) -> str:
    return f"{getattr(llm, 'provider_id', '?')}/{getattr(llm, 'model_name', '?')}"
