"""The spans of a call: one ``chat {model}`` span (CLIENT) per call, the GenAI operation, with
one child span per HTTP attempt.

A call's span is started at its first request (its start time is the call's, set by the core),
so that, when propagation is on, the attempt's span exists when its ``traceparent`` is sent;
spans of attempts that never built a request (no key, a limiter's deadline) are made after the
fact. The observer hooks then close them with what the call turned out to be."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llmplug import AttemptInfo, Call, CallInfo, HTTPRequest

from . import _attrs, _config
from ._metrics import SCHEMA_URL, SCOPE

__all__ = ["attempt_started", "call_ended", "tracer"]

_NS = 1_000_000_000
_propagator = TraceContextTextMapPropagator()


def tracer() -> Tracer:
    return trace.get_tracer(SCOPE, schema_url=SCHEMA_URL)


class _Live:
    """A call's span once started, and its attempts' spans and records until the call ends."""

    __slots__ = ("attempts", "pending", "span")

    def __init__(self) -> None:
        self.span: Span | None = None
        self.attempts: dict[int, Span] = {}
        self.pending: list[AttemptInfo] = []


_live: dict[str, _Live] = {}


def reset() -> None:
    _live.clear()


def _start_call(live: _Live, provider: str, model: str, call: Call | None, start: float) -> Span:
    if live.span is None:
        attrs = _attrs.common(provider, model, call)
        if call is not None:
            attrs.update(_attrs.request(call))
        live.span = tracer().start_span(
            f"{_attrs.OPERATION} {model}",
            kind=SpanKind.CLIENT,
            attributes=attrs,
            start_time=int(start * _NS),
        )
    return live.span


def _under(span: Span) -> Context:
    return trace.set_span_in_context(span)


def _attempt_attrs(call: Call | None, provider: str, model: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"gen_ai.provider.name": provider, "gen_ai.request.model": model}
    where = _attrs.server(call.base_url) if call is not None else None
    if where is not None:
        attrs["server.address"], attrs["server.port"] = where
    return attrs


def attempt_started(call: Call, request: HTTPRequest) -> None:
    """A request was built: the attempt's span starts (its call's too, at the first), and
    carries the trace context to the provider when propagation is on."""
    if call.call_id is None:  # not an observed call (a registry's probe)
        return
    live = _live.setdefault(call.call_id, _Live())
    parent = _start_call(live, call.provider, call.model, call, call.started or 0.0)
    attrs = _attempt_attrs(call, call.provider, call.model)
    attrs["http.request.method"] = request.method
    attrs["url.full"] = request.url.split("?", 1)[0]  # a query may hold a key
    if call.attempt:
        attrs["http.request.resend_count"] = call.attempt
    span = tracer().start_span(
        f"{_attrs.OPERATION} {call.model} attempt",
        context=_under(parent),
        kind=SpanKind.CLIENT,
        attributes=attrs,
    )
    live.attempts[call.attempt] = span
    if _config.propagate():
        _propagator.inject(request.headers, context=_under(span))


def _close_attempt(span: Span, info: AttemptInfo) -> None:
    attrs: dict[str, Any] = {"llmplug.attempt": info.attempt}
    if info.http_status is not None:
        attrs["http.response.status_code"] = info.http_status
    if info.error_type:
        attrs["error.type"] = info.error_type
    if info.key:
        attrs["llmplug.key"] = info.key
    if info.retry_reason:
        attrs["llmplug.retry_reason"] = info.retry_reason
    if info.request_id:
        attrs["llmplug.request_id"] = info.request_id
    span.set_attributes(attrs)
    if info.status != "ok":
        span.set_status(Status(StatusCode.ERROR, info.error_type or info.status))
    span.end(end_time=int((info.started + info.duration_s) * _NS))


def _attempt_after(parent: Span, info: AttemptInfo, call: Call | None) -> None:
    span = tracer().start_span(
        f"{_attrs.OPERATION} {info.model} attempt",
        context=_under(parent),
        kind=SpanKind.CLIENT,
        attributes=_attempt_attrs(call, info.provider, info.model),
        start_time=int(info.started * _NS),
    )
    _close_attempt(span, info)


def attempt_ended(info: AttemptInfo) -> None:
    live = _live.setdefault(info.call_id, _Live())
    span = live.attempts.pop(info.attempt, None)
    if span is not None:
        _close_attempt(span, info)
    elif live.span is not None:
        _attempt_after(live.span, info, None)
    else:  # no request yet: its span waits for the call's
        live.pending.append(info)


def call_ended(info: CallInfo) -> Span:
    """The call's span, closed with the outcome; returns it (ended)."""
    live = _live.pop(info.call_id, None) or _Live()
    span = _start_call(live, info.provider, info.model, info.call, info.started)
    for pending in live.pending:
        _attempt_after(span, pending, info.call)
    for orphan in live.attempts.values():  # an attempt the core never reported: closed here
        orphan.end()
    attrs: dict[str, Any] = {
        "llmplug.call_id": info.call_id,
        "llmplug.attempts": info.attempts,
    }
    if info.trace_id:
        attrs["llmplug.trace_id"] = info.trace_id
    if info.completion is not None:
        attrs.update(_attrs.response(info.completion))
    elif info.response_model:
        attrs["gen_ai.response.model"] = info.response_model
    if info.first_chunk_s is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = info.first_chunk_s
    if info.http_status is not None:
        attrs["http.response.status_code"] = info.http_status
    if info.error_type:
        attrs["error.type"] = info.error_type
    if _config.capture_content():
        _content(attrs, info)
    span.set_attributes(attrs)
    if info.status != "ok":
        span.set_status(Status(StatusCode.ERROR, info.error_type or info.status))
    span.end(end_time=int((info.started + info.duration_s) * _NS))
    return span


def _content(attrs: dict[str, Any], info: CallInfo) -> None:
    if info.call is not None:
        attrs["gen_ai.input.messages"] = _attrs.input_messages(info.call)
        system = _attrs.system_instructions(info.call)
        if system is not None:
            attrs["gen_ai.system_instructions"] = system
    if info.completion is not None:
        attrs["gen_ai.output.messages"] = _attrs.output_messages(info.completion)
