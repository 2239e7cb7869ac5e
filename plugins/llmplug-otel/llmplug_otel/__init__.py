"""OpenTelemetry spans and metrics for llmplug calls, after the GenAI semantic conventions
(v1.41.0). See docs/observability.md for what each span and metric holds.

Found through the ``llmplug`` entry-point group. A call's span starts at its first request
and ends when the call does; its attempts are its children; tools the decorators run are
``execute_tool`` spans; an ``llmplug batch`` run is one parent span."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Generator, Iterator
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode

from llmplug import AttemptInfo, Call, CallInfo, HTTPRequest, RunInfo, ToolInfo, hookimpl

from . import _attrs, _metrics, _spans
from ._config import CAPTURE_ENV, PROPAGATE_ENV, capture_content, configure, propagate
from ._metrics import watch

try:  # the API's default meter provider has no public name
    from opentelemetry.metrics._internal import _ProxyMeterProvider
except ImportError:  # pragma: no cover - another API version: always record, as before
    _ProxyMeterProvider = ()  # type: ignore[assignment,misc]

__all__ = [
    "CAPTURE_ENV",
    "OPERATION",
    "PROPAGATE_ENV",
    "build_request",
    "capture_content",
    "configure",
    "observe_attempt",
    "observe_call",
    "observe_run",
    "observe_tool",
    "propagate",
    "reset",
    "watch",
]

OPERATION = _attrs.OPERATION
_NS = 1_000_000_000
_log = logging.getLogger(__name__)


def _off() -> bool:
    """Whether no OpenTelemetry provider is set, for traces or for metrics (the API's own
    proxies are still in place). The API then records nothing, so neither does the plugin:
    building the attributes for nothing was most of what an installed but unconfigured plugin
    cost each call. Asked on every call: a provider set later (once, as the API allows) is
    used from the next call on; one named in the environment later, within ``RECHECK`` s."""
    if _METER_API is None:  # pragma: no cover - another API version
        return _proxies()
    if trace._TRACER_PROVIDER is not None or _METER_API._METER_PROVIDER is not None:
        return False
    global _recheck_at
    now = time.monotonic()
    if now < _recheck_at:
        return True
    # The getters look in the environment for a provider named there, and load and set it:
    # two looks, three times a call, were half of what the plugin still cost while off.
    _recheck_at = now + RECHECK
    return _proxies()


def _proxies() -> bool:
    return isinstance(trace.get_tracer_provider(), ProxyTracerProvider) and isinstance(
        metrics.get_meter_provider(), _ProxyMeterProvider
    )


#: While off, how often the environment is looked at again for a provider named there.
RECHECK = 1.0
_recheck_at = 0.0


def _meter_api() -> Any:
    """The API module that holds the meter provider set, when the providers set are where
    this plugin knows them (else None: ``_off`` asks the public getters every time)."""
    try:
        from opentelemetry.metrics import _internal as meter
    except ImportError:  # pragma: no cover - another API version
        return None
    if not (hasattr(trace, "_TRACER_PROVIDER") and hasattr(meter, "_METER_PROVIDER")):
        return None  # pragma: no cover - another API version
    return meter


_METER_API = _meter_api()


def reset() -> None:
    """Forget the instruments and the calls in progress (a test that installs a new
    MeterProvider calls this)."""
    _metrics.reset()
    _spans.reset()


@hookimpl(wrapper=True)
def build_request(wire: str, call: Call, key: str) -> Generator[None, HTTPRequest | None, Any]:
    request = yield
    if request is not None and call.call_id is not None and not _off():
        try:
            _spans.attempt_started(call, request)
        except Exception:  # telemetry must never fail the call
            _log.exception("llmplug_otel: starting an attempt's span failed")
    return request


@hookimpl
def observe_attempt(info: AttemptInfo) -> None:
    if not _off():
        _spans.attempt_ended(info)


@hookimpl
def observe_call(info: CallInfo) -> None:
    if _off():
        return
    _spans.call_ended(info)
    _record(info)


def _record(info: CallInfo) -> None:
    m = _metrics.instruments()
    attrs = _attrs.common(info.provider, info.model, info.call)
    if info.response_model:
        attrs["gen_ai.response.model"] = info.response_model
    if info.error_type:
        attrs["error.type"] = info.error_type
    m.duration.record(info.duration_s, attributes=attrs)
    usage = info.usage
    if usage is not None:
        for kind, n in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            m.tokens.record(n, attributes={**attrs, "gen_ai.token.type": kind})
    first, last = info.first_chunk_s, info.last_chunk_s
    if first is not None:
        m.first_chunk.record(first, attributes=attrs)
        if last is not None and usage is not None and usage.output_tokens > 1:
            m.per_token.record((last - first) / (usage.output_tokens - 1), attributes=attrs)


@hookimpl
def observe_tool(info: ToolInfo) -> None:
    if _off():
        return
    name = info.call.name
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "gen_ai.tool.call.id": info.call.id,
        "gen_ai.tool.type": "function",
    }
    if info.description:
        attrs["gen_ai.tool.description"] = info.description
    if info.session_id:
        attrs["gen_ai.conversation.id"] = info.session_id
    if info.trace_id:
        attrs["llmplug.trace_id"] = info.trace_id
    if info.error_type or info.status != "ok":
        attrs["error.type"] = info.error_type or info.status
    metric_attrs = dict(attrs)
    for key in ("gen_ai.tool.call.id", "gen_ai.tool.description", "gen_ai.conversation.id"):
        metric_attrs.pop(key, None)
    metric_attrs.pop("llmplug.trace_id", None)
    if capture_content():
        attrs["gen_ai.tool.call.arguments"] = info.call.arguments
        if info.result is not None:
            attrs["gen_ai.tool.call.result"] = info.result
    start = int(info.started * _NS)
    span = _spans.tracer().start_span(
        f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attrs, start_time=start
    )
    if info.status != "ok":
        span.set_status(Status(StatusCode.ERROR, info.error_type or info.status))
    span.end(end_time=start + int(info.duration_s * _NS))
    _metrics.instruments().tool_duration.record(info.duration_s, attributes=metric_attrs)


@hookimpl
def observe_run(info: RunInfo) -> contextlib.AbstractContextManager[None]:
    return _run(info)


@contextlib.contextmanager
def _run(info: RunInfo) -> Iterator[None]:
    if info.llm is not None:
        watch(info.llm)
    _metrics.instruments()  # the gauges exist from the run's start
    attrs: dict[str, Any] = {"llmplug.run.kind": info.kind, "llmplug.run.name": info.name}
    for key, value in info.attributes.items():
        if isinstance(value, (str, int, float, bool)):
            attrs[f"llmplug.{info.kind}.{key}"] = value
    name = getattr(info.llm, "model_name", None) or getattr(info.llm, "name", None)
    if isinstance(name, str):
        attrs["gen_ai.request.model"] = name
    with _spans.tracer().start_as_current_span(
        f"llmplug {info.kind} {info.name}", kind=SpanKind.INTERNAL, attributes=attrs
    ):
        yield
