"""@llm_chat over real HTTP: events, tool loops, history, compaction, cancellation."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from llmplug import (
    APIKeyPool,
    AssistantReply,
    ChatDone,
    Compaction,
    CompactionEvent,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    TextDelta,
    ToolCallEvent,
    ToolResultEvent,
    llm_chat,
    tool,
)
from llmplug.testing import Fault, LLMTestServer, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]


@tool(name="get_weather", description="Get the weather for a city")
async def get_weather(city: str, unit: str = "C") -> dict[str, str]:
    """Args:
    city: the city's name
    unit: temperature unit
    """
    return {"city": city, "weather": "sunny", "unit": unit}


@tool
def broken(x: int) -> str:
    """Always fails."""
    raise ValueError("the sensor is offline")


async def run(agent: Any, *args: Any, **kwargs: Any) -> list[Any]:
    return [e async for e in agent.events(*args, **kwargs)]


@pytest.mark.parametrize("wire", WIRES)
async def test_reply_and_history(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    @llm_chat(llm_interface=make_llm(interface=wire))
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a helpful assistant."""

    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    before = copy.deepcopy(history)
    server.push(Reply(text="Paris is in France."))
    events = await run(agent, "Where is Paris?", history)
    assert [type(e) for e in events] == [AssistantReply, ChatDone]
    done = events[-1]
    assert done.reply == "Paris is in France."
    assert history == before  # the caller's history is not modified
    assert done.history == [
        {"role": "system", "content": "You are a helpful assistant."},
        *before,
        {"role": "user", "content": "Where is Paris?"},
        {"role": "assistant", "content": "Paris is in France."},
    ]
    # Passing the returned history back goes on from there, system prompt not repeated.
    server.push(Reply(text="Yes."))
    again = (await run(agent, "Sure?", done.history))[-1]
    assert [m["role"] for m in again.history] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]


async def test_stream_yields_deltas(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), stream=True, reasoning_effort="high")
    async def agent(message: str, chat_history: list[dict[str, Any]] | None = None) -> None:
        """Be brief."""

    server.push(Reply(text="one two three"))
    events = await run(agent, "count")
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == 3 and "".join(deltas) == "one two three"
    assert isinstance(events[-1], ChatDone) and events[-1].reply == "one two three"
    assert server.requests[0].json["reasoning_effort"] == "high"


async def test_reasoning_effort_on_the_responses_wire(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm(interface=OpenAIResponsesCompatible), reasoning_effort="high")
    async def agent(message: str) -> None:
        """Think hard."""

    await run(agent, "2+2?")
    body = server.requests[0].json
    assert body["reasoning"] == {"effort": "high"}
    assert body["instructions"] == "Think hard."


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_tool_calls_then_answer(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], stream: bool
) -> None:
    @llm_chat(llm_interface=make_llm(interface=wire), toolkit=[get_weather], stream=stream)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a weather assistant."""

    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="get_weather", arguments={"city": "Paris"}, id="c1"),
                ToolCallReply(name="get_weather", arguments={"city": "Oslo", "unit": "F"}, id="c2"),
            ]
        ),
        Reply(text="Sunny in both."),
    )
    events = await run(agent, "Weather in Paris and Oslo?")
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    results = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert [c.id for c in calls] == ["c1", "c2"]
    assert [r.content for r in results] == [
        '{"city":"Paris","weather":"sunny","unit":"C"}',
        '{"city":"Oslo","weather":"sunny","unit":"F"}',
    ]
    done = events[-1]
    assert isinstance(done, ChatDone) and done.reply == "Sunny in both."
    assert [m["role"] for m in done.history] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert [m.get("tool_call_id") for m in done.history if m["role"] == "tool"] == ["c1", "c2"]
    assert len(server.requests) == 2
    second = server.requests[1].json
    sent = second.get("messages") or second["input"]
    assert (
        sum(1 for m in sent if m.get("role") == "tool" or m.get("type") == "function_call_output")
        == 2
    )


async def test_tool_errors_go_back_to_the_model(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[get_weather, broken])
    async def agent(message: str) -> None:
        """Assistant."""

    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="broken", arguments={"x": 1}, id="a"),
                ToolCallReply(name="nope", arguments={}, id="b"),
                ToolCallReply(name="get_weather", arguments={"town": "Paris"}, id="c"),
            ]
        ),
        Reply(text="Sorry, I could not."),
    )
    events = await run(agent, "try everything")
    results = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert all(r.is_error for r in results)
    assert "ValueError: the sensor is offline" in results[0].content
    assert "no tool named 'nope'" in results[1].content and "get_weather" in results[1].content
    assert "invalid arguments" in results[2].content
    assert events[-1].reply == "Sorry, I could not."
    tool_msgs = [m for m in server.requests[1].json["messages"] if m["role"] == "tool"]
    assert [m["content"].startswith("Error:") for m in tool_msgs] == [True, True, True]


async def test_usage_is_summed_per_chat_and_tracked_per_interface(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()

    @llm_chat(llm_interface=llm, toolkit=[get_weather])
    async def agent(message: str) -> None:
        """Assistant."""

    u = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    server.push(
        Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "X"})], usage=u),
        Reply(text="done", usage=u),
    )
    done = (await run(agent, "go"))[-1]
    assert (done.usage.input_tokens, done.usage.output_tokens) == (20, 10)
    assert llm.usage.calls == 2
    assert llm.usage.total().total_tokens == 30
    assert llm.usage.last is not None and llm.usage.last.output_tokens == 5


def long_history(turns: int) -> list[dict[str, Any]]:
    history: list[dict[str, Any]] = []
    for i in range(turns):
        history.append({"role": "user", "content": f"question {i} " + "lorem ipsum " * 20})
        history.append({"role": "assistant", "content": f"answer {i} " + "dolor sit " * 20})
    return history


async def test_long_history_is_compacted(server: LLMTestServer, make_llm: MakeLLM) -> None:
    llm = make_llm(context_window=1000)

    @llm_chat(llm_interface=llm, compaction=Compaction(threshold=0.5, keep_last=4))
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a patient assistant."""

    server.push(Reply(text="SUMMARY: ten questions about lorem ipsum"), Reply(text="final"))
    events = await run(agent, "one more", long_history(10))
    compaction = events[0]
    assert isinstance(compaction, CompactionEvent)
    assert compaction.removed_messages == 20 + 1 - 4
    assert compaction.estimated_tokens_after < compaction.estimated_tokens_before
    summary_req, chat_req = server.requests
    assert "question 0" in summary_req.json["messages"][1]["content"]
    sent = chat_req.json["messages"]
    assert sent[0] == {"role": "system", "content": "You are a patient assistant."}
    assert sent[1]["content"].endswith("SUMMARY: ten questions about lorem ipsum")
    assert len(sent) == 2 + 4
    assert sent[-1]["content"] == "one more"
    done = events[-1]
    assert isinstance(done, ChatDone) and len(done.history) == 2 + 4 + 1


async def test_compaction_never_splits_a_tool_call_from_its_result(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    history = long_history(6)
    history += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny " * 30},
        {"role": "tool", "tool_call_id": "t1", "content": "again " * 30},
    ]

    @llm_chat(
        llm_interface=make_llm(context_window=800),
        compaction=Compaction(threshold=0.5, keep_last=2),
    )
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """Assistant."""

    server.push(Reply(text="summary"), Reply(text="ok"))
    await run(agent, "next", history)
    sent = server.requests[1].json["messages"]
    roles = [m["role"] for m in sent]
    # keep_last=2 would start at a tool result; the kept tail starts at its assistant call.
    assert roles[-4:] == ["assistant", "tool", "tool", "user"]
    assert sent[-4]["tool_calls"][0]["id"] == "t1"


async def test_compaction_can_be_turned_off(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(context_window=500), compaction=False)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """Assistant."""

    events = await run(agent, "hi", long_history(10))
    assert not any(isinstance(e, CompactionEvent) for e in events)
    assert len(server.requests) == 1


async def stop_by_closing(agent: Any) -> None:
    stream = agent.events("talk forever")
    async for event in stream:
        if isinstance(event, TextDelta):
            break
    await stream.aclose()


async def stop_by_cancelling(agent: Any) -> None:
    first = asyncio.Event()

    async def consume() -> None:
        async for event in agent.events("talk forever"):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("stop", [stop_by_closing, stop_by_cancelling], ids=["aclose", "cancel"])
async def test_a_consumer_that_stops_closes_the_stream_and_releases_the_key(
    server: LLMTestServer, make_llm: MakeLLM, stop: Callable[[Any], Awaitable[None]]
) -> None:
    llm = make_llm()

    @llm_chat(llm_interface=llm, stream=True)
    async def agent(message: str) -> None:
        """Assistant."""

    server.push(Fault(kind="never_ending", seconds=20))
    await stop(agent)
    await server.client_aborts_reached(1)
    assert llm.key_pool.status()[0]["in_flight"] == 0


async def test_extra_parameters_join_the_user_message(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm())
    async def agent(
        message: str, history: list[dict[str, Any]] | None = None, mood: str = "calm"
    ) -> None:
        """Assistant in a {tone} tone."""

    await run(agent, "hello", None, mood="happy", _template_params={"tone": "warm"})
    sent = server.requests[0].json["messages"]
    assert sent[0]["content"] == "Assistant in a warm tone."
    assert sent[1]["content"] == "hello\n\nmood: happy"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1000, 100_000])
async def test_deeply_nested_tool_arguments_go_back_to_the_model_as_a_tool_error(
    server: LLMTestServer, make_llm: MakeLLM, depth: int
) -> None:
    ran: list[Any] = []

    @tool
    def store(value: Any) -> str:
        """Store a value."""
        ran.append(value)
        return "stored"

    @llm_chat(llm_interface=make_llm(), toolkit=[store])
    async def agent(message: str) -> None:
        """Assistant."""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="store", arguments=f'{{"value": {nested(depth)}}}')]),
        Reply(text="I will keep it flatter."),
    )
    events = await run(agent, "store this")
    (result,) = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert result.is_error
    assert "invalid arguments for store" in result.content and "nested" in result.content
    assert ran == []
    assert events[-1].reply == "I will keep it flatter."
    tool_msg = server.requests[1].json["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"] == result.content


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this")


async def test_a_tool_result_that_cannot_be_shown_goes_back_as_a_tool_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]

    @tool
    def dig() -> Any:
        """Dig deep."""
        return deep

    @tool
    def opaque() -> Any:
        """Something without a text form."""
        return Unprintable()

    @llm_chat(llm_interface=make_llm(), toolkit=[dig, opaque])
    async def agent(message: str) -> None:
        """Assistant."""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="dig", id="a"), ToolCallReply(name="opaque", id="b")]),
        Reply(text="Both failed."),
    )
    events = await run(agent, "go")
    results = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert [r.is_error for r in results] == [True, True]
    assert results[0].content.startswith("Error: dig returned a value that cannot be shown")
    assert "nested too deeply" in results[0].content
    assert "RuntimeError: no text for this" in results[1].content
    assert events[-1].reply == "Both failed."


async def test_the_system_prompt_keeps_braces_that_are_not_template_params(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm())
    async def agent(message: str) -> None:
        """Answer in {tone} tone; never print {user.name} or {items[0]}."""

    await run(agent, "hi", _template_params={"tone": "a warm"})
    system = server.requests[0].json["messages"][0]["content"]
    assert system == "Answer in a warm tone; never print {user.name} or {items[0]}."


@pytest.mark.parametrize("stream", [False, True])
def test_a_plain_def_agent_is_a_blocking_generator(server: LLMTestServer, stream: bool) -> None:
    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t"), "m", server.base_url)

    @llm_chat(llm_interface=llm, toolkit=[get_weather], stream=stream)
    def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a weather assistant."""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Oslo"})]),
        Reply(text="Sunny in Oslo."),
        Reply(text="You are welcome."),
    )
    events = list(agent.events("Weather in Oslo?"))
    assert isinstance(events[-1], ChatDone) and events[-1].reply == "Sunny in Oslo."
    (result,) = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert "sunny" in result.content and not result.is_error
    # A second call runs on a second event loop with a second client, as SimpleLLMFunc's pairs.
    again = list(agent("thanks", events[-1].history))
    assert "".join(text for text, _ in again) == "You are welcome."
    assert again[-1][1][-1] == {"role": "assistant", "content": "You are welcome."}
    assert len(server.requests[2].json["messages"]) == 6
    assert llm._transport.open_clients == 0


def test_stopping_a_plain_def_agent_early_frees_its_key(server: LLMTestServer) -> None:
    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t"), "m", server.base_url)

    @llm_chat(llm_interface=llm, stream=True)
    def agent(message: str) -> None:
        """Assistant."""

    server.push(Reply(text="one two three four", chunk_delay=0.01))
    events = agent.events("count")
    assert isinstance(next(events), TextDelta)
    events.close()
    assert llm.key_pool.status()[0]["in_flight"] == 0


async def test_a_plain_def_agent_inside_a_running_loop_says_to_use_async(
    make_llm: MakeLLM,
) -> None:
    @llm_chat(llm_interface=make_llm())
    def agent(message: str) -> None:
        """Assistant."""

    with pytest.raises(RuntimeError, match="async def"):
        agent("hi")


async def test_an_async_generator_agent_is_an_async_generator_too(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # SimpleLLMFunc-style: an async def with a yield in its body still means "async".
    @llm_chat(llm_interface=make_llm())
    async def agent(message: str) -> AsyncIterator[Any]:
        """Assistant."""
        yield None

    events = await run(agent, "hi")
    assert isinstance(events[-1], ChatDone) and events[-1].reply == "echo: hi"
