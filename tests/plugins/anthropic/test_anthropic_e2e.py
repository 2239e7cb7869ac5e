"""The decorators, streams, retries and images on the anthropic-messages wire, unchanged, over
the test server speaking Anthropic's shapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from llmplug import (
    APIKeyPool,
    AuthenticationError,
    BadRequestError,
    ChatDone,
    Done,
    ImgUrl,
    LLMInterface,
    TextDelta,
    ToolCallEvent,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import Error, LLMTestServer, RecordedRequest, Reply, ToolCallReply
from llmplug_anthropic import AnthropicCompatible

Make = Callable[..., LLMInterface]


@tool(name="get_weather", description="Get the weather for a city")
async def get_weather(city: str) -> dict[str, str]:
    """Args:
    city: the city's name
    """
    return {"city": city, "weather": "sunny"}


class Sentiment(msgspec.Struct):
    label: str
    score: float


async def test_chat_and_stream_agree(server: LLMTestServer, anthropic: Make) -> None:
    llm = anthropic()
    server.push(Reply(text="one two three"), Reply(text="one two three"))
    whole = await llm.chat("count")
    events = [e async for e in llm.chat_stream("count")]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["one", " two", " three"]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.completion.text == whole.text == "one two three"
    assert done.completion.finish_reason == whole.finish_reason == "stop"
    # The test server counts input by request size, which "stream": true changes.
    streamed = done.completion.usage
    assert whole.usage is not None and streamed is not None
    assert whole.usage.output_tokens == streamed.output_tokens == 3
    assert streamed.total_tokens == streamed.input_tokens + 3 > 3
    assert llm.usage.last == streamed


@pytest.mark.parametrize("stream", [False, True])
async def test_llm_chat_tool_loop(server: LLMTestServer, anthropic: Make, stream: bool) -> None:
    @llm_chat(llm_interface=anthropic(), toolkit=[get_weather], stream=stream)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a weather assistant."""

    server.push(
        Reply(
            text="Let me check.",
            tool_calls=[
                ToolCallReply(name="get_weather", arguments={"city": "Paris"}, id="toolu_1"),
                ToolCallReply(name="get_weather", arguments={"city": "Oslo"}, id="toolu_2"),
            ],
        ),
        Reply(text="Sunny in both."),
    )
    events = [e async for e in agent.events("Weather in Paris and Oslo?")]
    assert [e.call.id for e in events if isinstance(e, ToolCallEvent)] == ["toolu_1", "toolu_2"]
    done = events[-1]
    assert isinstance(done, ChatDone) and done.reply == "Sunny in both."
    first, second = (r.json for r in server.requests)
    assert first["system"] == "You are a weather assistant."
    assert first["tools"][0]["name"] == "get_weather"
    assert first["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string"
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    results = second["messages"][2]
    assert results["role"] == "user"
    assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [
        ("tool_result", "toolu_1"),
        ("tool_result", "toolu_2"),
    ]
    assert msgspec.json.decode(results["content"][1]["content"]) == {
        "city": "Oslo",
        "weather": "sunny",
    }


def forced_tool(answer: Any) -> Callable[[RecordedRequest], Reply]:
    """Answer as Anthropic does when a tool is forced: with a call of that tool."""

    def respond(req: RecordedRequest) -> Reply:
        choice = req.json.get("tool_choice") or {}
        if choice.get("type") != "tool":
            return Reply(text="I would rather chat.")
        return Reply(tool_calls=[ToolCallReply(name=choice["name"], arguments=answer)])

    return respond


async def test_typed_llm_function_uses_a_forced_tool(
    server: LLMTestServer, anthropic: Make
) -> None:
    @llm_function(llm_interface=anthropic())
    async def classify(text: str) -> Sentiment:
        """Classify the sentiment of the text."""

    server.default = forced_tool({"label": "positive", "score": 0.9})
    assert await classify("I love it") == Sentiment(label="positive", score=0.9)
    (req,) = server.requests
    assert "response_format" not in req.json
    assert req.json["tool_choice"] == {"type": "tool", "name": "Sentiment"}
    (answer_tool,) = req.json["tools"]
    assert answer_tool["name"] == "Sentiment"
    assert answer_tool["input_schema"]["required"] == ["label", "score"]


async def test_typed_llm_function_with_a_non_object_type(
    server: LLMTestServer, anthropic: Make
) -> None:
    @llm_function(llm_interface=anthropic())
    async def count(text: str) -> int:
        """Count the words."""

    server.default = forced_tool({"result": 3})
    assert await count("a b c") == 3


async def test_typed_llm_function_with_tools_lets_the_model_pick(
    server: LLMTestServer, anthropic: Make
) -> None:
    @llm_function(llm_interface=anthropic(), toolkit=[get_weather])
    async def forecast(city: str) -> Sentiment:
        """How does the weather in the city feel?"""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Rome"})]),
        Reply(
            tool_calls=[ToolCallReply(name="Sentiment", arguments={"label": "good", "score": 1})]
        ),
    )
    assert await forecast("Rome") == Sentiment(label="good", score=1.0)
    first = server.requests[0].json
    assert first["tool_choice"] == {"type": "any"}  # one of the tools, the answer's included
    assert [t["name"] for t in first["tools"]] == ["get_weather", "Sentiment"]


async def test_the_typed_answer_streams_as_text(server: LLMTestServer, anthropic: Make) -> None:
    llm = anthropic()
    fmt = {"type": "json_schema", "json_schema": {"name": "Out", "schema": {"type": "object"}}}
    server.default = forced_tool({"a": 1})
    events = [e async for e in llm.chat_stream("hi", response_format=fmt)]
    done = events[-1]
    assert isinstance(done, Done)
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert streamed == done.completion.text == '{"a":1}'
    assert done.completion.tool_calls == []
    assert done.completion.finish_reason == "stop"


async def test_overloaded_and_rate_limited_are_retried(
    server: LLMTestServer, anthropic: Make
) -> None:
    llm = anthropic(keys=("sk-a", "sk-b"))
    server.push(
        Error(status=529, message="Overloaded"),
        Error(status=429, message="slow down", headers={"retry-after": "30"}),
        Reply(text="ok"),
    )
    assert (await llm.chat("hi")).text == "ok"
    keys = [r.api_key for r in server.requests]
    assert len(keys) == 3
    assert keys[2] != keys[1]  # the 429's key rests; the next attempt goes to the other key
    assert server.requests[0].api == "anthropic"


async def test_anthropic_rate_limit_headers_rest_a_used_up_key(
    server: LLMTestServer, anthropic: Make
) -> None:
    """Read through the parser's rate_limits(), as the core does for every wire: a key whose
    anthropic-ratelimit-requests-remaining is 0 rests until its reset (an RFC 3339 time)."""
    reset = datetime.now(UTC) + timedelta(seconds=40)
    used_up = {
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z"),
    }
    llm = anthropic(keys=("sk-a", "sk-b"))
    server.push(Reply(text="last one", headers=used_up), Reply(text="ok"), Reply(text="ok"))
    assert (await llm.chat("hi")).text == "last one"
    status = llm.key_pool.status()
    assert status[0]["state"] == "cooling" and 30 < status[0]["cooldown_seconds"] <= 40
    await llm.chat("hi")
    await llm.chat("hi")
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b", "sk-b"]


async def test_anthropic_error_bodies_become_typed_errors(
    server: LLMTestServer, anthropic: Make
) -> None:
    llm = anthropic()
    server.push(Error(status=400, message="max_tokens: too large"))
    with pytest.raises(BadRequestError) as info:
        await llm.chat("hi")
    assert info.value.message == "max_tokens: too large"
    assert info.value.type == "invalid_request_error"
    server.push(Error(status=401, message="invalid x-api-key"))
    with pytest.raises(AuthenticationError, match="invalid x-api-key"):
        await llm.chat("hi")


async def test_images_go_as_base64_and_url_sources(server: LLMTestServer, anthropic: Make) -> None:
    @llm_function(llm_interface=anthropic())
    async def describe(photo: ImgUrl, sketch: ImgUrl) -> str:
        """Describe the images."""

    png = "data:image/png;base64,iVBORw0KGgo="
    server.push(Reply(text="a cat"))
    assert await describe(ImgUrl("https://example.com/cat.jpg"), ImgUrl(png)) == "a cat"
    (req,) = server.requests
    assert [url for url, _ in req.images] == ["https://example.com/cat.jpg", png]
    sources = [
        b["source"]
        for b in req.json["messages"][0]["content"]
        if isinstance(b, dict) and b.get("type") == "image"
    ]
    assert sources == [
        {"type": "url", "url": "https://example.com/cat.jpg"},
        {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    ]


async def test_selected_by_wire_in_provider_json(server: LLMTestServer, tmp_path: Path) -> None:
    entry = {
        "model_name": "claude-x",
        "api_keys": ["sk-ant-file"],
        "base_url": server.base_url,
        "wire": "anthropic-messages",
        "api_params": {"max_tokens": 64},
    }
    path = tmp_path / "provider.json"
    path.write_text(json.dumps({"anthropic": [entry]}))
    llm = LLMInterface.load_from_json_file(path)["anthropic"]["claude-x"]
    try:
        assert (await llm.chat("hello")).text == "echo: hello"
    finally:
        await llm.aclose()
    (req,) = server.requests
    assert (req.api, req.api_key, req.json["max_tokens"]) == ("anthropic", "sk-ant-file", 64)


async def test_anthropic_compatible_defaults_to_the_wire(server: LLMTestServer) -> None:
    llm = AnthropicCompatible(
        APIKeyPool(["sk-ant"], "a", shared=False), "claude-x", server.base_url
    )
    try:
        assert llm.wire == "anthropic-messages"
        assert (await llm.chat("hello")).text == "echo: hello"
    finally:
        await llm.aclose()
    assert server.requests[0].api == "anthropic"
