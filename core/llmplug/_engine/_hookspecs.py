"""The hooks. Those of a call's path are synchronous and ``firstresult``: a plugin answers
with an object that holds any async or stateful work (a request, a parser, a lease, an
awaitable), or None when the name asked for (wire, strategy, limiter kind) is not its own.
``select_member`` is the same for a model group's strategies, and ``wrap_calls`` for a feature
that wraps whole calls (a response cache). The observer hooks are not ``firstresult``: every
implementation is told, and what they return is ignored (but for ``observe_run``'s context
managers, which the core enters)."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from llmplug._limits._keys import APIKeyPool, KeyLease
    from llmplug._vocab._call import Call, HTTPRequest
    from llmplug._wire._parser import StreamParser

    from ._members import Group, GroupCall, Member
    from ._observe import AttemptInfo, CallInfo, RunInfo, ToolInfo
    from ._wrap import CallWrapper

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "llmplug"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""The marker plugins put on their hook implementations."""


@hookspec(firstresult=True)
def build_request(wire: str, call: Call, key: str) -> HTTPRequest | None:
    """Build the HTTP request of one attempt of ``call`` for the wire format ``wire``, sent with
    API key ``key``. Called once per attempt; the core then sets ``call.headers`` over the
    request's own. See docs/plugins.md."""


@hookspec(firstresult=True)
def parse_stream(wire: str, call: Call) -> StreamParser | None:
    """Return a new parser for one response of ``call`` on ``wire`` (see
    :class:`llmplug.StreamParser`). Called once per attempt, before the request is built, so a
    wire without a parser never sends anything."""


@hookspec(firstresult=True)
def select_key(strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
    """Lease a key from ``pool`` by the rotation strategy named ``strategy``. Called once per
    attempt, under ``pool.lock`` and only while ``pool.healthy()`` is not empty; the lease is
    released by the core in ``finally``."""


@hookspec(firstresult=True)
def check_key_strategy(strategy: str, settings: dict[str, Any], pool: APIKeyPool) -> bool | None:
    """Check the settings of the key strategy ``strategy`` (provider.json's
    ``"key_strategy": {"name": ..., **settings}``, or ``APIKeyPool(strategy={...})``) for
    ``pool``, once, as an interface is built: raise :class:`llmplug.ConfigError` with ``field``
    naming the setting at fault (``"weights"``, ``"weights[1]"``), or return True. None: the
    name is not yours. A strategy given settings that no plugin checks fails the load."""


@hookspec(firstresult=True)
def acquire_rate(limiter: object, cost: float) -> Awaitable[None] | None:
    """Return an awaitable that waits until ``limiter`` admits a request of ``cost``. Called once
    per attempt; dispatch on the limiter's ``kind``."""


@hookspec(firstresult=True)
def select_member(strategy: str, group: Group, call: GroupCall) -> Member | None:
    """Choose the member of ``group`` that takes ``call`` by the group strategy named
    ``strategy``: one of ``call.candidates`` (never empty when asked). Called once per group
    call, under the group's lock (so a strategy's state in the members needs no lock of its
    own; it must not block); the group then tries its other candidates and its fallbacks
    should that one fail."""


@hookspec(firstresult=True)
def wrap_calls(feature: str, config: Mapping[str, Any], owner: Any) -> CallWrapper | None:
    """Return the object that wraps every call of ``owner`` (an interface or a model group)
    for the feature named ``feature`` (``"cache"``: the ``cache=`` argument), configured by
    ``config``; None when the feature is not this plugin's. Asked once, when ``owner`` is made
    with that feature configured; never asked, and no call wrapped, otherwise. See
    :class:`llmplug.CallWrapper`."""


@hookspec
def observe_attempt(info: AttemptInfo) -> None:
    """Told once per HTTP attempt as it ends (reply, error or interruption), with its timing,
    usage, key fingerprint, status, retry reason and error type. Not called, and ``info`` not
    built, while no plugin implements it. Must not block: it runs on the caller's loop."""


@hookspec
def observe_call(info: CallInfo) -> None:
    """Told once per call (all its attempts) as it ends, with its outcome, duration, attempt
    count and usage. Not called while no plugin implements an observer hook."""


@hookspec
def observe_tool(info: ToolInfo) -> None:
    """Told once per tool call that ``llm_function`` or ``llm_chat`` ran, as it ends (a tool
    that failed included), with its timing, outcome and the text sent back to the model. Not
    called while no plugin implements an observer hook. Must not block."""


@hookspec
def observe_run(info: RunInfo) -> AbstractContextManager[None] | None:
    """Asked as a run of many calls starts (``llmplug batch``): return a context manager the
    core enters around the whole run (every call of the run happens inside it, so a tracer can
    make it their parent), or None. Every implementation is asked; one that raises is logged
    and left out."""
