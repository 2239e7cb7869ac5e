"""``llmplug batch`` with OpenTelemetry configured in its process: one parent span for the
run, every call's span (and its attempts) under it, the same metrics, the pool watched."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmplug.cli._main import main
from llmplug.testing import Error, LLMTestServer
from tests.core.cli._run import provider_file
from tests.plugins.otel._sdk import attrs, named, points


def test_a_batch_run_is_one_parent_span_over_its_calls(
    server: LLMTestServer, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    config = provider_file(tmp_path, server, model_name="m-batch")
    src = tmp_path / "requests.jsonl"
    lines = [{"id": f"r{i}", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(5)]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines))
    server.push(Error(status=503, message="busy"))  # one call retried
    out = tmp_path / "out.jsonl"
    assert main(["batch", "-c", str(config), "-m", "local/m-batch", str(src), "-o", str(out)]) == 0
    got = list(spans.get_finished_spans())
    (run,) = named(got, "llmplug batch requests.jsonl")
    a = attrs(run)
    assert a["llmplug.run.kind"] == "batch" and a["llmplug.batch.max_in_flight"] == 64
    assert a["gen_ai.request.model"] == "m-batch"
    calls = named(got, "chat m-batch")
    assert len(calls) == 5
    assert all(c.parent is not None and c.parent.span_id == run.context.span_id for c in calls)
    assert {c.context.trace_id for c in calls} == {run.context.trace_id}
    attempts = named(got, "chat m-batch attempt")
    assert len(attempts) == 6
    assert run.start_time is not None and run.end_time is not None
    assert all(run.start_time <= (c.start_time or 0) <= (c.end_time or 0) <= run.end_time
               for c in calls)  # fmt: skip
    (duration,) = points("gen_ai.client.operation.duration", **{"gen_ai.request.model": "m-batch"})
    assert duration.count == 5
    # The run watched its interface: its pool is reported.
    (ok,) = points("llmplug.keys", **{"gen_ai.request.model": "m-batch", "llmplug.key.state": "ok"})
    assert ok.value == 3
