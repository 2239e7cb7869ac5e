"""The Responses API wire against the LiteLLM proxy's ``fake-resp`` models (bridged by the
proxy to its mocked chat models: see ../shared/servers/litellm/README.md)."""

from __future__ import annotations

from typing import Any

import pytest

from llmplug import (
    AuthenticationError,
    ChatDone,
    Done,
    OpenAIResponsesCompatible,
    StreamEvent,
    TextDelta,
    Tool,
    llm_chat,
)

from .conftest import MakeLiteLLM

pytestmark = pytest.mark.litellm

WEATHER = Tool(
    name="get_weather",
    description="Get the weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def responses(make: MakeLiteLLM, model: str = "fake-resp", **kw: Any) -> OpenAIResponsesCompatible:
    llm: OpenAIResponsesCompatible = make(model=model, interface=OpenAIResponsesCompatible, **kw)
    return llm


async def test_text_with_instructions_and_reasoning_effort(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm)
    c = await llm.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        reasoning_effort="low",
        max_tokens=50,
    )
    assert c.text == "hi there from mock"
    assert c.finish_reason == "stop"
    assert (
        c.usage is not None and c.usage.total_tokens == c.usage.input_tokens + c.usage.output_tokens
    )


async def test_stream_text_and_usage(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm)
    events: list[StreamEvent] = [e async for e in llm.chat_stream("hi")]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    done = events[-1]
    assert isinstance(done, Done)
    assert text == done.completion.text == "hi there from mock"
    assert done.completion.usage is not None and done.completion.usage.output_tokens > 0
    assert sum(isinstance(e, Done) for e in events) == 1


async def test_function_call(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm, model="fake-resp-tools")
    c = await llm.chat("Weather in Paris?", tools=[WEATHER])
    assert [(t.name, t.parsed_arguments()) for t in c.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert c.tool_calls[0].id
    assert c.finish_reason == "tool_calls"


async def test_tool_result_goes_back_by_call_id(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm, model="fake-resp-tools")
    first = await llm.chat("Weather in Paris?", tools=[WEATHER])
    call = first.tool_calls[0]
    history: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        first.to_message(),
        {"role": "tool", "tool_call_id": call.id, "content": '{"forecast": "sunny"}'},
    ]
    # The proxy accepts the function_call / function_call_output items and answers again.
    again = await llm.chat(history, tools=[WEATHER])
    assert again.tool_calls or again.text


async def test_the_same_agent_code_runs_on_the_responses_wire(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm)

    @llm_chat(llm_interface=llm, stream=True)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are terse."""

    events = [e async for e in agent.events("hello")]
    done = events[-1]
    assert isinstance(done, ChatDone)
    assert done.reply == "hi there from mock"
    assert [m["role"] for m in done.history] == ["system", "user", "assistant"]


async def test_a_bad_key_is_rotated_away_from(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm, keys=["sk-wrong", "sk-test-b"])
    for _ in range(3):
        assert (await llm.chat("hi")).text == "hi there from mock"
    bad, good = llm.key_pool.status()
    assert bad["state"] == "disabled" and "401" in (bad["cooldown_reason"] or "")
    assert (bad["requests"], good["requests"]) == (1, 3)


async def test_only_bad_keys_raise_authentication_error(make_litellm: MakeLiteLLM) -> None:
    llm = responses(make_litellm, keys=["sk-wrong"])
    with pytest.raises(AuthenticationError, match="Invalid API key") as info:
        await llm.chat("hi")
    assert info.value.status == 401
