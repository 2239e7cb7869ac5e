"""The metrics: the conventions' client histograms (with their advisory bucket boundaries),
and observable gauges of the key pools, limiters, groups and shared backends being watched."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

__all__ = ["Instruments", "instruments", "reset", "watch"]

SCOPE = "llmplug_otel"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"

# The conventions' ExplicitBucketBoundaries (semantic conventions v1.41.0, gen-ai-metrics).
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864)  # fmt: skip
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92)  # fmt: skip
# Those of gen_ai.server.time_to_first_token and gen_ai.server.time_per_output_token: the
# client-side measurements cover the same range.
FIRST_CHUNK_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
                       2.5, 5.0, 7.5, 10.0)  # fmt: skip
PER_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


class Instruments:
    """Made on first use, so the application's MeterProvider (set after import) is used."""

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE, schema_url=SCHEMA_URL)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the call's start to the first chunk of its stream.",
            explicit_bucket_boundaries_advisory=FIRST_CHUNK_BUCKETS,
        )
        self.per_token = meter.create_histogram(
            "llmplug.client.time_per_output_token",
            unit="s",
            description=(
                "Time per output token after the first chunk of a stream, measured by the "
                "client (the client side of gen_ai.server.time_per_output_token)."
            ),
            explicit_bucket_boundaries_advisory=PER_TOKEN_BUCKETS,
        )
        self.tool_duration = meter.create_histogram(
            "gen_ai.execute_tool.duration",
            unit="s",
            description="Duration of a tool's execution.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        for name, unit, description, callback in _GAUGES:
            meter.create_observable_gauge(
                name, callbacks=[callback], unit=unit, description=description
            )


_instruments: Instruments | None = None
_lock = threading.Lock()


def instruments() -> Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = Instruments()
    return _instruments


def reset() -> None:
    """Forget the instruments (a test that installs a new MeterProvider calls this)."""
    global _instruments
    _instruments = None


# -- what is watched -----------------------------------------------------------------------

_watched: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(*targets: Any) -> None:
    """Report the pools, limiters and circuits of these interfaces and model groups (held
    weakly: an interface dropped is no longer reported). ``llmplug batch`` watches its own."""
    for target in targets:
        _watched.add(target)


def _interfaces() -> Iterator[Any]:
    """Each watched interface once, a watched group's members and fallbacks included."""
    seen: set[int] = set()
    todo = list(_watched)
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        members = getattr(one, "all_members", None)
        if members is not None:
            todo.extend(m.llm for m in members)
        else:
            yield one


def _groups() -> Iterator[Any]:
    seen: set[int] = set()
    todo = list(_watched)
    while todo:
        one = todo.pop()
        members = getattr(one, "all_members", None)
        if members is None or id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        todo.extend(m.llm for m in members)


def _who(llm: Any) -> dict[str, Any]:
    return {"gen_ai.provider.name": llm.provider_id, "gen_ai.request.model": llm.model_name}


def _limiters(llm: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    for budget, limiter in (("requests", llm.rate_limiter), ("tokens", llm.token_limiter)):
        status = getattr(limiter, "status", None)
        if callable(status):
            yield budget, status()


def _limiter_available(options: CallbackOptions) -> Iterable[Observation]:
    for llm in _interfaces():
        for budget, status in _limiters(llm):
            if "available" in status:
                attrs = {**_who(llm), "llmplug.limiter.budget": budget}
                yield Observation(status["available"], attrs)


def _limiter_waiting(options: CallbackOptions) -> Iterable[Observation]:
    for llm in _interfaces():
        for budget, status in _limiters(llm):
            if "waiting" in status:
                attrs = {**_who(llm), "llmplug.limiter.budget": budget}
                yield Observation(status["waiting"], attrs)


def _keys(options: CallbackOptions) -> Iterable[Observation]:
    for llm in _interfaces():
        counts = {"ok": 0, "cooling": 0, "disabled": 0}
        for key in llm.key_pool.status():
            counts[key["state"]] = counts.get(key["state"], 0) + 1
        for state, n in counts.items():
            yield Observation(n, {**_who(llm), "llmplug.key.state": state})


def _key_in_flight(options: CallbackOptions) -> Iterable[Observation]:
    for llm in _interfaces():
        for key in llm.key_pool.status():
            yield Observation(key["in_flight"], {**_who(llm), "llmplug.key": key["key"]})


def _members(options: CallbackOptions) -> Iterable[Observation]:
    for group in _groups():
        counts = {"closed": 0, "half_open": 0, "open": 0}
        for member in group.status().values():
            counts[member["state"]] = counts.get(member["state"], 0) + 1
        for state, n in counts.items():
            yield Observation(n, {"llmplug.group": group.name, "llmplug.member.state": state})


def _backends(options: CallbackOptions) -> Iterable[Observation]:
    for llm in _interfaces():
        for budget, status in _limiters(llm):
            if "redis_available" in status:
                attrs = {**_who(llm), "llmplug.backend": "redis", "llmplug.backend.role": budget}
                yield Observation(int(bool(status["redis_available"])), attrs)
        conn = getattr(llm.key_pool.health, "conn", None)
        down = getattr(conn, "down", None)
        if isinstance(down, bool):
            attrs = {**_who(llm), "llmplug.backend": "redis", "llmplug.backend.role": "keys"}
            yield Observation(int(not down), attrs)


_GAUGES = (
    (
        "llmplug.limiter.available",
        "1",
        "What the limiter would admit now: requests, or tokens (llmplug.limiter.budget).",
        _limiter_available,
    ),
    ("llmplug.limiter.waiting", "{caller}", "Callers waiting for the limiter.", _limiter_waiting),
    ("llmplug.keys", "{key}", "Keys of the pool by state: ok, cooling, disabled.", _keys),
    (
        "llmplug.key.in_flight",
        "{request}",
        "Requests in flight per key fingerprint.",
        _key_in_flight,
    ),
    (
        "llmplug.group.members",
        "{member}",
        "Members (and fallbacks) of a model group by circuit state: closed, half_open, open.",
        _members,
    ),
    ("llmplug.backend.up", "1", "Whether the shared backend (Redis) answers: 1 or 0.", _backends),
)
