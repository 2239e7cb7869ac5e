"""llmplug-otel next to llmplug-cache: the miss's attempt sends the request built for the
cache's key, and the tracing wrapper still sees it (its span, its traceparent); a hit makes no
attempt and no request."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmplug_otel
from llmplug import Registry
from llmplug.testing import Error, LLMTestServer, Reply
from tests.conftest import MakeLLM
from tests.plugins.otel._sdk import attrs, named


async def test_a_cached_miss_is_traced_and_propagated_and_a_hit_is_neither(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    llmplug_otel.configure(propagate=True)
    llm = make_llm(
        model_name="m-cached", registry=Registry(), cache={"path": str(tmp_path / "c.db")}
    )
    server.push(Error(status=503), Reply(text="ok"))
    first = await llm.chat("hi", temperature=0.5)
    again = await llm.chat("hi", temperature=0.5)
    assert (first.cached, again.cached) == (False, True)
    got = list(spans.get_finished_spans())
    (call,) = named(got, "chat m-cached")
    attempts = sorted(named(got, "chat m-cached attempt"), key=lambda s: s.start_time or 0)
    assert len(attempts) == 2  # the miss's two attempts; the hit made none
    trace_id = f"{call.context.trace_id:032x}"
    sent = [r.headers["traceparent"] for r in server.requests]
    assert sent == [
        f"00-{trace_id}-{a.context.span_id:016x}-{a.context.trace_flags:02x}" for a in attempts
    ]
    assert [r.api_key for r in server.requests] == ["sk-test-1", "sk-test-1"]
    assert all(r.json["temperature"] == 0.5 for r in server.requests)
    assert attrs(attempts[0])["url.full"] == server.base_url + "/chat/completions"
