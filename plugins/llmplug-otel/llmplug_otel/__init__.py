"""OpenTelemetry spans and metrics for llmplug calls, after the GenAI semantic conventions.

Found through the ``llmplug`` entry-point group. The observer hooks are told after the fact,
so spans are made with the recorded start and end times: a call's span when the call ends,
its attempts' spans (held until then by ``call_id``) as its children."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmplug import AttemptInfo, CallInfo, hookimpl

__all__ = ["OPERATION", "observe_attempt", "observe_call"]

OPERATION = "chat"
_SCOPE = "llmplug_otel"
_NS = 1_000_000_000

# A call's ended attempts, until the call ends: attempts end before their call does.
_pending: dict[str, list[AttemptInfo]] = {}
_instruments: tuple[Any, Any] | None = None


def _meters() -> tuple[Any, Any]:
    """The two histograms, made on first use so the application's MeterProvider (set after
    import) is the one used."""
    global _instruments
    if _instruments is None:
        meter = metrics.get_meter(_SCOPE)
        _instruments = (
            meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used",
            ),
            meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration",
            ),
        )
    return _instruments


def reset() -> None:
    """Forget the instruments (a test that installs a new MeterProvider calls this)."""
    global _instruments
    _instruments = None
    _pending.clear()


def _common(info: AttemptInfo | CallInfo) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": info.provider,
        "gen_ai.system": info.provider,
        "gen_ai.request.model": info.model,
    }
    if info.response_model:
        attrs["gen_ai.response.model"] = info.response_model
    if info.error_type:
        attrs["error.type"] = info.error_type
    return attrs


def _usage(attrs: dict[str, Any], info: AttemptInfo | CallInfo) -> None:
    if info.usage is not None:
        attrs["gen_ai.usage.input_tokens"] = info.usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = info.usage.output_tokens


def _status(span: Any, info: AttemptInfo | CallInfo) -> None:
    if info.status != "ok":
        span.set_status(Status(StatusCode.ERROR, info.error_type or info.status))


@hookimpl
def observe_attempt(info: AttemptInfo) -> None:
    _pending.setdefault(info.call_id, []).append(info)


@hookimpl
def observe_call(info: CallInfo) -> None:
    attempts = _pending.pop(info.call_id, [])
    tracer = trace.get_tracer(_SCOPE)
    attrs = _common(info)
    _usage(attrs, info)
    if info.http_status is not None:
        attrs["http.response.status_code"] = info.http_status
    attrs["llmplug.attempts"] = info.attempts
    attrs["llmplug.stream"] = info.stream
    if info.trace_id:
        attrs["llmplug.trace_id"] = info.trace_id
    start = int(info.started * _NS)
    span = tracer.start_span(
        f"{OPERATION} {info.model}", kind=SpanKind.CLIENT, attributes=attrs, start_time=start
    )
    _status(span, info)
    parent = trace.set_span_in_context(span)
    for a in attempts:
        a_attrs = _common(a)
        _usage(a_attrs, a)
        a_attrs["llmplug.attempt"] = a.attempt
        if a.http_status is not None:
            a_attrs["http.response.status_code"] = a.http_status
        if a.key:
            a_attrs["llmplug.key"] = a.key
        if a.retry_reason:
            a_attrs["llmplug.retry_reason"] = a.retry_reason
        a_start = int(a.started * _NS)
        child = tracer.start_span(
            f"{OPERATION} {a.model} attempt",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=a_attrs,
            start_time=a_start,
        )
        _status(child, a)
        child.end(end_time=a_start + int(a.duration_s * _NS))
    span.end(end_time=start + int(info.duration_s * _NS))

    tokens, duration = _meters()
    m_attrs = {k: v for k, v in _common(info).items() if k != "gen_ai.system"}
    duration.record(info.duration_s, attributes=m_attrs)
    if info.usage is not None:
        for kind, n in (("input", info.usage.input_tokens), ("output", info.usage.output_tokens)):
            tokens.record(n, attributes={**m_attrs, "gen_ai.token.type": kind})
