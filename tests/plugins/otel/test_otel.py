"""llmplug-otel, installed as an entry-point plugin: calls over HTTP become GenAI spans and
metrics (semantic conventions v1.41.0), read back from the SDK's in-memory exporters."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from llmplug import Registry, StreamError, llm_function
from llmplug.testing import Error, Fault, LLMTestServer, Reply
from tests.conftest import MakeLLM
from tests.plugins.otel._sdk import attrs, named, points

USAGE = {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}


def test_the_plugin_is_found_through_its_entry_point() -> None:
    registry = Registry()
    assert any(p.name == "otel" and p.distribution == "llmplug-otel" for p in registry.plugins())
    assert registry.observed
    assert not Registry(disable=["otel"]).observed


async def test_a_retried_call_is_one_span_with_an_attempt_span_each(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-retried", registry=Registry())
    server.push(
        Error(status=503, message="busy"),
        Reply(text="hello there", model="m-2025", usage=USAGE, finish_reason="length"),
    )
    tracer = trace.get_tracer("the-app")
    with tracer.start_as_current_span("handle request") as outer:
        answer = await llm.chat("hi")
    got: list[ReadableSpan] = list(spans.get_finished_spans())
    (call,) = named(got, "chat m-retried")
    attempts = sorted(
        named(got, "chat m-retried attempt"), key=lambda s: attrs(s)["llmplug.attempt"]
    )
    assert call.kind is SpanKind.CLIENT
    assert call.parent is not None and call.parent.span_id == outer.get_span_context().span_id
    assert [a.parent.span_id for a in attempts if a.parent] == [call.context.span_id] * 2
    a = attrs(call)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "test"
    assert a["gen_ai.request.model"] == "m-retried"
    assert a["gen_ai.response.model"] == "m-2025"
    # 1. the response id, from the body
    assert a["gen_ai.response.id"] == answer.response_id and answer.response_id
    # 2. finish reasons
    assert a["gen_ai.response.finish_reasons"] == ("length",)
    # 3. the server
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    assert (a["server.address"], a["server.port"]) == (host, int(port))
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (40, 9)
    assert a["gen_ai.request.stream"] is False and a["gen_ai.output.type"] == "text"
    assert "error.type" not in a and "gen_ai.system" not in a  # deprecated since 1.37
    first, second = (attrs(s) for s in attempts)
    assert first["error.type"] == "InternalServerError"
    assert first["http.response.status_code"] == 503
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert second["llmplug.retry_reason"] == "503 InternalServerError"
    assert second["http.request.resend_count"] == 1
    assert str(second["llmplug.key"]).startswith("key-")
    assert second["server.address"] == host and second["url.full"].endswith("/chat/completions")
    # 8. usage is counted once: on the call's span, never on an attempt's
    assert not any(k.startswith("gen_ai.usage") for s in attempts for k in attrs(s))
    assert sum(attrs(s).get("gen_ai.usage.output_tokens", 0) for s in got) == 9
    assert call.start_time is not None and attempts[0].start_time is not None
    assert call.start_time <= attempts[0].start_time
    assert call.end_time is not None and attempts[1].end_time is not None
    assert attempts[1].end_time <= call.end_time

    (duration,) = points(
        "gen_ai.client.operation.duration", **{"gen_ai.request.model": "m-retried"}
    )
    assert duration.count == 1
    # 3. on metrics too
    assert duration.attributes["server.address"] == host
    assert duration.attributes["server.port"] == int(port)
    # 9. the conventions' advisory bucket boundaries
    assert tuple(duration.explicit_bounds) == (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28,
                                               2.56, 5.12, 10.24, 20.48, 40.96, 81.92)  # fmt: skip
    tokens = {
        p.attributes["gen_ai.token.type"]: p
        for p in points("gen_ai.client.token.usage", **{"gen_ai.request.model": "m-retried"})
    }
    assert (tokens["input"].sum, tokens["output"].sum) == (40, 9)
    assert tuple(tokens["input"].explicit_bounds) == (
        1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864
    )  # fmt: skip


async def test_a_streamed_call_has_its_id_finish_usage_and_first_chunk_time(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-stream", registry=Registry())
    server.push(Reply(text="one two three four", usage=USAGE, chunk_delay=0.01))
    events = [e async for e in llm.chat_stream("hi")]
    done = events[-1].completion  # type: ignore[union-attr]
    (call,) = named(list(spans.get_finished_spans()), "chat m-stream")
    a = attrs(call)
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.response.id"] == done.response_id and done.response_id
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.output_tokens"] == 9
    ttfc = a["gen_ai.response.time_to_first_chunk"]
    assert call.end_time is not None and call.start_time is not None
    assert 0 < ttfc < (call.end_time - call.start_time) / 1e9
    (first,) = points(
        "gen_ai.client.operation.time_to_first_chunk", **{"gen_ai.request.model": "m-stream"}
    )
    assert first.count == 1 and first.sum == pytest.approx(ttfc)
    (per_token,) = points(
        "llmplug.client.time_per_output_token", **{"gen_ai.request.model": "m-stream"}
    )
    # Four pieces 10 ms apart over 9 output tokens: at least 30 ms / 8 a token.
    assert per_token.count == 1 and per_token.sum >= 0.03 / 8
    assert tuple(per_token.explicit_bounds)[:3] == (0.01, 0.025, 0.05)
    # A call that does not stream records neither.
    server.push(Reply(text="whole"))
    await llm.chat("hi")
    (first,) = points(
        "gen_ai.client.operation.time_to_first_chunk", **{"gen_ai.request.model": "m-stream"}
    )
    assert first.count == 1


async def test_a_broken_stream_is_an_error_span_and_an_error_duration(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-broken", registry=Registry())
    server.push(Fault("cut_stream", after=3))
    with pytest.raises(StreamError):
        async for _ in llm.chat_stream("hi"):
            pass
    (call,) = named(list(spans.get_finished_spans()), "chat m-broken")
    assert call.status.status_code is StatusCode.ERROR
    assert attrs(call)["error.type"] == "StreamError"
    (failed,) = points("gen_ai.client.operation.duration", **{"gen_ai.request.model": "m-broken"})
    assert failed.count == 1 and failed.attributes["error.type"] == "StreamError"


async def test_a_call_that_never_reached_the_server_is_still_one_span_per_attempt(
    make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    # Nothing listens on this port: every attempt fails to connect.
    llm = make_llm(
        model_name="m-refused", base_url="http://127.0.0.1:9/v1", max_retries=1, registry=Registry()
    )
    with pytest.raises(Exception, match="request failed"):
        await llm.chat("hi")
    got = list(spans.get_finished_spans())
    (call,) = named(got, "chat m-refused")
    attempts = named(got, "chat m-refused attempt")
    assert len(attempts) == 2 and all(s.parent and s.parent.span_id == call.context.span_id
                                      for s in attempts)  # fmt: skip
    assert attrs(call)["error.type"] == "APIConnectionError"
    assert attrs(call)["server.port"] == 9


async def test_request_parameters_conversation_and_output_type(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-params", registry=Registry())
    server.push(Reply(text="ok"))
    await llm.chat(
        "hi",
        temperature=0.2,
        max_tokens=64,
        top_p=0.9,
        seed=7,
        stop=["END", "STOP"],
        frequency_penalty=0.5,
        presence_penalty=-0.5,
        reasoning_effort="low",
        session_id="conversation-42",
    )
    (call,) = named(list(spans.get_finished_spans()), "chat m-params")
    a = attrs(call)
    assert a["gen_ai.request.temperature"] == 0.2
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.seed"] == 7
    assert a["gen_ai.request.stop_sequences"] == ("END", "STOP")
    assert a["gen_ai.request.frequency_penalty"] == 0.5
    assert a["gen_ai.request.presence_penalty"] == -0.5
    assert a["llmplug.request.reasoning_effort"] == "low"
    assert a["gen_ai.conversation.id"] == "conversation-42"
    assert a["gen_ai.output.type"] == "text"


class Verdict(BaseModel):
    ok: bool


async def test_typed_output_is_json_output(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-typed", registry=Registry())

    @llm_function(llm_interface=llm)
    async def judge(text: str) -> Verdict:
        """Judge the text."""
        raise NotImplementedError

    server.push(Reply(text='{"ok": true}'))
    assert await judge("fine") == Verdict(ok=True)
    (call,) = named(list(spans.get_finished_spans()), "chat m-typed")
    assert attrs(call)["gen_ai.output.type"] == "json"


async def test_concurrent_calls_never_mix_their_attempts(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    # With id(call) as the call's id, a freed call's id came back for the next one, and
    # attempts landed under the wrong call's span.
    llm = make_llm(model_name="m-many", registry=Registry())
    server.push(*[Error(status=503) for _ in range(10)])

    async def one(i: int) -> None:
        await llm.chat(f"question {i}")

    for _ in range(3):
        await asyncio.gather(*(one(i) for i in range(20)))
    got = list(spans.get_finished_spans())
    calls = named(got, "chat m-many")
    assert len(calls) == 60
    assert len({attrs(c)["llmplug.call_id"] for c in calls}) == 60
    children: dict[int, list[ReadableSpan]] = {c.context.span_id: [] for c in calls}
    for s in named(got, "chat m-many attempt"):
        assert s.parent is not None
        children[s.parent.span_id].append(s)
    for c in calls:
        mine = children[c.context.span_id]
        assert len(mine) == attrs(c)["llmplug.attempts"]
        assert sorted(attrs(s)["llmplug.attempt"] for s in mine) == list(range(len(mine)))
