"""What a group strategy (the ``select_member`` hook) is handed: the call (:class:`GroupCall`),
the members it picks from (:class:`Member`, with the group's view of each one's load, latency
and health) and the group asking (:class:`Group`, a :class:`~llmplug.ModelGroup`). Here, below
the model groups, so that the hook specs and the registry name them without importing a
group."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol

import msgspec

from llmplug._vocab._errors import ConfigError
from llmplug._vocab._types import Completion, StreamEvent

__all__ = ["Chatty", "Group", "GroupCall", "Member"]


class Chatty(Protocol):
    """What a group needs of a member: an interface, or another group."""

    async def chat(self, messages: Any, tools: Any = None, **params: Any) -> Completion: ...

    def chat_stream(
        self, messages: Any, tools: Any = None, **params: Any
    ) -> AsyncGenerator[StreamEvent, None]: ...


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
        "epoch",
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
        #: Counts the circuit's openings: a call started before the latest one has no say on
        #: the circuit (its verdict is about a provider state that is gone).
        self.epoch = 0

    def usable(self, now: float) -> bool:
        """Whether the member may take a call now: its circuit is closed, or open past its
        cooldown and not already running its one trial call."""
        if self.state == "closed":
            return True
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
        return self.state == "half_open" and not self.trial

    def fits(self, tokens: int | None) -> bool:
        """Whether a call of ``tokens`` (estimated prompt plus ``max_tokens``) fits the member's
        context window; an unknown size or window always fits."""
        return tokens is None or self.context_window is None or tokens <= self.context_window

    def __repr__(self) -> str:
        return f"Member({self.name!r}, state={self.state!r}, in_flight={self.in_flight})"


class Group(Protocol):
    """What a group strategy may read of the :class:`~llmplug.ModelGroup` that asks it."""

    @property
    def name(self) -> str: ...

    @property
    def members(self) -> list[Member]: ...


def _label(llm: Any) -> str:
    return f"{getattr(llm, 'provider_id', '?')}/{getattr(llm, 'model_name', '?')}"
