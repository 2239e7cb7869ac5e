"""Opt-in content capture (off by default) and opt-in trace propagation (off by default)."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmplug_otel
from llmplug import Registry, llm_chat, tool
from llmplug.testing import LLMTestServer, Reply, ToolCallReply
from tests.conftest import MakeLLM
from tests.plugins.otel._sdk import attrs, named

KEY = "sk-content-secret-123456"


@tool
def lookup(word: str) -> str:
    """Look a word up."""
    return f"{word}: a greeting"


async def _round_trip(server: LLMTestServer, make_llm: MakeLLM, model: str) -> None:
    llm = make_llm(keys=(KEY,), model_name=model, registry=Registry())

    @llm_chat(llm_interface=llm, toolkit=[lookup])
    async def helper(message: str) -> None:
        """You define words."""

    server.push(
        Reply(
            text="Let me look.",
            tool_calls=[ToolCallReply(name="lookup", arguments={"word": "hello"}, id="c-1")],
        ),
        Reply(text="It is a greeting."),
    )
    async for _ in helper("What is hello?"):
        pass


async def test_no_content_is_recorded_by_default(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    await _round_trip(server, make_llm, "m-no-content")
    got = list(spans.get_finished_spans())
    everything = json.dumps([attrs(s) for s in got], default=str)
    for secret in ("What is hello?", "You define words", "a greeting", "hello", KEY):
        assert secret not in everything


@pytest.mark.parametrize("how", ["env", "code"])
async def test_content_capture_records_structured_messages_and_never_keys(
    server: LLMTestServer,
    make_llm: MakeLLM,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    else:
        llmplug_otel.configure(capture_content=True)
    model = f"m-content-{how}"
    await _round_trip(server, make_llm, model)
    got = list(spans.get_finished_spans())
    first, second = sorted(named(got, f"chat {model}"), key=lambda s: s.start_time or 0)
    a = attrs(first)
    assert json.loads(a["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You define words."}
    ]
    assert json.loads(a["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is hello?"}]}
    ]
    assert json.loads(a["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me look."},
                {
                    "type": "tool_call",
                    "id": "c-1",
                    "name": "lookup",
                    "arguments": {"word": "hello"},
                },
            ],
            "finish_reason": "tool_calls",
        }
    ]
    # The second turn's input holds the tool call and its response.
    turn = json.loads(attrs(second)["gen_ai.input.messages"])
    assert turn[-1] == {
        "role": "tool",
        "parts": [{"type": "tool_call_response", "id": "c-1", "response": "hello: a greeting"}],
    }
    (tool_span,) = named(got, "execute_tool lookup")
    assert json.loads(attrs(tool_span)["gen_ai.tool.call.arguments"]) == {"word": "hello"}
    assert attrs(tool_span)["gen_ai.tool.call.result"] == "hello: a greeting"
    everything = json.dumps([attrs(s) for s in got], default=str)
    assert KEY not in everything and KEY[-8:] not in everything


async def test_no_trace_context_is_sent_by_default(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-no-prop", registry=Registry())
    server.push(Reply(text="ok"))
    with trace.get_tracer("the-app").start_as_current_span("outer"):
        await llm.chat("hi")
    (request,) = server.requests
    assert "traceparent" not in request.headers and "tracestate" not in request.headers


@pytest.mark.parametrize("how", ["env", "code"])
async def test_propagation_sends_each_attempts_traceparent(
    server: LLMTestServer,
    make_llm: MakeLLM,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    from llmplug.testing import Error

    if how == "env":
        monkeypatch.setenv("LLMPLUG_OTEL_PROPAGATE", "true")
    else:
        llmplug_otel.configure(propagate=True)
    model = f"m-prop-{how}"
    llm = make_llm(model_name=model, registry=Registry())
    server.push(Error(status=503), Reply(text="ok"))
    # No span of the application's: the call's own span starts the trace.
    await llm.chat("hi")
    got = list(spans.get_finished_spans())
    (call,) = named(got, f"chat {model}")
    attempts = sorted(named(got, f"chat {model} attempt"), key=lambda s: s.start_time or 0)
    sent = [r.headers["traceparent"] for r in server.requests]
    trace_id = f"{call.context.trace_id:032x}"
    assert sent == [
        f"00-{trace_id}-{a.context.span_id:016x}-{a.context.trace_flags:02x}" for a in attempts
    ]
    assert len(set(sent)) == 2  # each attempt its own parent id


async def test_propagation_carries_the_tracestate(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    llmplug_otel.configure(propagate=True)
    llm = make_llm(model_name="m-prop-state", registry=Registry())
    server.push(Reply(text="ok"))
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc")]),
    )
    with trace.use_span(NonRecordingSpan(remote)):
        await llm.chat("hi")
    (request,) = server.requests
    assert request.headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert request.headers["tracestate"] == "vendor=abc"
