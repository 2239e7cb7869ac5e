"""``@llm_chat(llm_interface=group)`` over two real test servers standing for two providers: a
tool loop whose first member runs out of quota mid-conversation goes on at the second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmplug import (
    APIKeyPool,
    ChatDone,
    LLMInterface,
    ModelGroup,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    ToolCallEvent,
    ToolResultEvent,
    llm_chat,
    tool,
)
from llmplug.testing import Error, LLMTestServer, RecordedRequest, Reply, ToolCallReply


@tool(name="get_weather", description="Get the weather for a city")
async def get_weather(city: str) -> str:
    """Args:
    city: the city's name
    """
    return f"sunny in {city}"


@pytest.fixture
async def group(server: LLMTestServer, other: LLMTestServer) -> AsyncIterator[ModelGroup]:
    """``a`` on Chat Completions (the cheaper, so the "cost" strategy always tries it first) and
    ``b`` on the Responses wire; each with one key and no waiting for a cooling key."""

    def member(cls: type[LLMInterface], srv: LLMTestServer, name: str, price: float) -> Any:
        return cls(
            api_key_pool=APIKeyPool([f"sk-{name}"], name, shared=False),
            model_name="gpt",
            base_url=srv.base_url,
            max_retries=1,
            retry_delay=0.001,
            key_wait_timeout=0.05,
            rate_limit_capacity=10_000,
            rate_limit_refill_rate=10_000.0,
            pricing={"input": price, "output": price},
        )

    a = member(OpenAICompatible, server, "a", 1.0)
    b = member(OpenAIResponsesCompatible, other, "b", 5.0)
    made = ModelGroup([a, b], strategy="cost")
    yield made
    await made.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_tool_loop_goes_on_at_the_next_member_when_the_first_runs_out_of_quota(
    server: LLMTestServer, other: LLMTestServer, group: ModelGroup, stream: bool
) -> None:
    def provider_a(req: RecordedRequest) -> Reply | Error:
        if len(server.requests) == 1:  # the first turn: a asks for the tool
            return Reply(
                tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Oslo"}, id="c1")]
            )
        # Then a is out of quota: its only key cools for a minute, so the member gives up.
        return Error(status=429, message="quota exceeded", headers={"retry-after": "60"})

    server.handler = provider_a
    other.default = Reply(text="It is sunny in Oslo.")

    @llm_chat(llm_interface=group, toolkit=[get_weather], stream=stream)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a weather assistant."""

    events = [e async for e in agent.events("Weather in Oslo?")]
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    results = [e.result for e in events if isinstance(e, ToolResultEvent)]
    assert [(c.id, c.name) for c in calls] == [("c1", "get_weather")]
    assert [r.content for r in results] == ["sunny in Oslo"]
    done = events[-1]
    assert isinstance(done, ChatDone) and done.reply == "It is sunny in Oslo."
    assert done.history == [
        {"role": "system", "content": "You are a weather assistant."},
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny in Oslo"},
        {"role": "assistant", "content": "It is sunny in Oslo."},
    ]
    # a answered the first turn and refused the second; b was asked once, with the whole
    # conversation (the tool call a made and its result) in its own wire's items.
    assert len(server.requests) == 2
    (second,) = other.requests
    items = second.json["input"]
    call = next(i for i in items if i.get("type") == "function_call")
    output = next(i for i in items if i.get("type") == "function_call_output")
    assert (call["call_id"], call["name"], output["call_id"]) == ("c1", "get_weather", "c1")
    assert output["output"] == "sunny in Oslo"
    assert items[-1] == output  # nothing after the tool's result: b answers from there
    status = group.status()
    assert status["a/gpt"]["errors"] == 1 and status["b/gpt"]["errors"] == 0
