"""Tools the decorators run are ``execute_tool`` spans, between the chat spans of their turn,
under whatever span the application opened; a failing tool is an error span."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmplug import Registry, llm_chat, llm_function, tool
from llmplug.testing import LLMTestServer, Reply, ToolCallReply
from tests.conftest import MakeLLM
from tests.plugins.otel._sdk import attrs, named, points


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    return f"sunny in {city}"


@tool
def broken_sensor() -> str:
    """Read the sensor."""
    raise RuntimeError("the sensor is offline")


async def test_a_tool_round_trip_through_llm_chat(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-tools", registry=Registry())

    @llm_chat(llm_interface=llm, toolkit=[get_weather, broken_sensor], session_id="chat-9")
    async def assistant(message: str) -> None:
        """You answer with tools."""

    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="get_weather", arguments={"city": "Oslo"}, id="call-w"),
                ToolCallReply(name="broken_sensor", arguments={}, id="call-s"),
            ]
        ),
        Reply(text="Sunny in Oslo; the sensor is down."),
    )
    with trace.get_tracer("the-app").start_as_current_span("user request") as outer:
        async for _ in assistant("Weather in Oslo?"):
            pass
    got = sorted(spans.get_finished_spans(), key=lambda s: s.start_time or 0)
    mine = [s for s in got if s.name != "user request" and not s.name.endswith("attempt")]
    names = [s.name for s in mine]
    assert (names[0], names[-1]) == ("chat m-tools", "chat m-tools")
    # The turn's two tools run concurrently: either may start first.
    assert sorted(names[1:-1]) == ["execute_tool broken_sensor", "execute_tool get_weather"]
    parent = outer.get_span_context().span_id
    assert all(s.parent is not None and s.parent.span_id == parent for s in mine)
    (ok,) = named(got, "execute_tool get_weather")
    (bad,) = named(got, "execute_tool broken_sensor")
    assert ok.kind is SpanKind.INTERNAL
    a = attrs(ok)
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "get_weather"
    assert a["gen_ai.tool.call.id"] == "call-w"
    assert a["gen_ai.tool.type"] == "function"
    assert a["gen_ai.tool.description"].startswith("The weather in a city")
    assert a["gen_ai.conversation.id"] == "chat-9"
    assert "gen_ai.tool.call.arguments" not in a  # content is opt-in
    assert ok.status.status_code is StatusCode.UNSET
    assert bad.status.status_code is StatusCode.ERROR
    assert attrs(bad)["error.type"] == "RuntimeError"
    assert attrs(bad)["gen_ai.tool.call.id"] == "call-s"
    # The tools ran between the first chat's end and the second's start.
    first, last = named(got, "chat m-tools")
    assert first.end_time is not None and last.start_time is not None
    assert ok.start_time is not None and ok.end_time is not None
    assert first.end_time <= ok.start_time and ok.end_time <= last.start_time
    # The chats and tools of one decorated call share its trace id.
    assert len({attrs(s)["llmplug.trace_id"] for s in mine}) == 1
    durations = {
        p.attributes["gen_ai.tool.name"]: p for p in points("gen_ai.execute_tool.duration")
    }
    assert durations["broken_sensor"].attributes["error.type"] == "RuntimeError"


async def test_llm_function_tools_are_spans_too(
    server: LLMTestServer, make_llm: MakeLLM, spans: InMemorySpanExporter
) -> None:
    llm = make_llm(model_name="m-fn-tools", registry=Registry())

    @llm_function(llm_interface=llm, toolkit=[get_weather])
    async def forecast(city: str) -> str:
        """Say the weather."""
        raise NotImplementedError

    server.push(
        Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Rome"})]),
        Reply(tool_calls=[ToolCallReply(name="no_such_tool", arguments={}, id="call-x")]),
        Reply(text="Sunny."),
    )
    assert await forecast("Rome") == "Sunny."
    got = list(spans.get_finished_spans())
    assert len(named(got, "execute_tool get_weather")) == 1
    (unknown,) = named(got, "execute_tool no_such_tool")
    assert attrs(unknown)["error.type"] == "UnknownTool"
    assert unknown.status.status_code is StatusCode.ERROR
    assert len(named(got, "chat m-fn-tools")) == 3
