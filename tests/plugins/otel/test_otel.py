"""llmplug-otel, installed as an entry-point plugin: calls over HTTP become GenAI spans and
metrics, read back from the OpenTelemetry SDK's in-memory exporters."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import llmplug_otel
from llmplug import Registry, StreamError
from llmplug.testing import Error, Fault, LLMTestServer, Reply
from tests.conftest import MakeLLM

_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _providers() -> None:
    # The global providers can be set once per process: this module's, for the whole run.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    llmplug_otel.reset()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _EXPORTER.clear()
    return _EXPORTER


def _points(name: str) -> list[Any]:
    data = _READER.get_metrics_data()
    out: list[Any] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    out.extend(metric.data.data_points)
    return out


def test_the_plugin_is_found_through_its_entry_point() -> None:
    registry = Registry()
    assert any(p.name == "otel" and p.distribution == "llmplug-otel" for p in registry.plugins())
    assert registry.observed
    assert not Registry(disable=["otel"]).observed


async def test_a_retried_call_is_one_span_with_an_attempt_span_each(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(registry=Registry())
    server.push(Error(status=503, message="busy"), Reply(text="hello there", model="m-2025"))
    tracer = trace.get_tracer("the-app")
    with tracer.start_as_current_span("handle request") as outer:
        await llm.chat("hi")
    got: list[ReadableSpan] = list(spans.get_finished_spans())
    call = next(s for s in got if s.name == "chat test-model")
    attempts = sorted(
        (s for s in got if s.name == "chat test-model attempt"),
        key=lambda s: str((s.attributes or {})["llmplug.attempt"]),
    )
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == outer.get_span_context().span_id
    assert [a.parent.span_id for a in attempts if a.parent] == [call.context.span_id] * 2
    attrs: dict[str, Any] = dict(call.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "test"
    assert attrs["gen_ai.request.model"] == "test-model"
    assert attrs["gen_ai.response.model"] == "m-2025"
    assert attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert "error.type" not in attrs
    first, second = (dict[str, Any](a.attributes or {}) for a in attempts)
    assert first["error.type"] == "InternalServerError"
    assert first["http.response.status_code"] == 503
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert second["llmplug.retry_reason"] == "503 InternalServerError"
    assert str(second["llmplug.key"]).startswith("key-")
    assert call.start_time is not None and attempts[0].start_time is not None
    assert call.start_time <= attempts[0].start_time

    (duration,) = _points("gen_ai.client.operation.duration")
    assert duration.count == 1 and duration.attributes["gen_ai.request.model"] == "test-model"
    tokens = {
        p.attributes["gen_ai.token.type"]: p.sum for p in _points("gen_ai.client.token.usage")
    }
    assert tokens["output"] == 2 and tokens["input"] > 0


async def test_a_broken_stream_is_an_error_span_and_an_error_duration(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(registry=Registry())
    server.push(Fault("cut_stream", after=3))
    with pytest.raises(StreamError):
        async for _ in llm.chat_stream("hi"):
            pass
    (call,) = [s for s in spans.get_finished_spans() if s.name == "chat test-model"]
    assert call.status.status_code is StatusCode.ERROR
    assert (call.attributes or {})["error.type"] == "StreamError"
    # Metrics are cumulative over the module: this test's failure is the one StreamError point.
    durations = _points("gen_ai.client.operation.duration")
    (failed,) = [p for p in durations if p.attributes.get("error.type") == "StreamError"]
    assert failed.count == 1 and failed.attributes["gen_ai.provider.name"] == "test"
