"""What the openai-responses plugin sends, seen by a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmplug import OpenAIResponsesCompatible, Tool
from llmplug.testing import LLMTestServer

MakeLLM = Callable[..., OpenAIResponsesCompatible]


@pytest.fixture
def llm(make_llm: MakeLLM) -> OpenAIResponsesCompatible:
    return make_llm(interface=OpenAIResponsesCompatible)


async def test_path_model_and_instructions(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    await llm.chat(
        [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "answer in French"},
            {"role": "user", "content": "hi"},
        ]
    )
    (req,) = server.requests
    assert req.path == "/v1/responses"
    assert req.headers["authorization"] == "Bearer sk-test-1"
    assert req.json == {
        "model": "test-model",
        "instructions": "be brief\n\nanswer in French",
        "input": [{"role": "user", "content": "hi"}],
    }


async def test_history_maps_to_input_items(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    history: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
            ],
        },
        {"role": "assistant", "content": "A cat. Shall I check the weather?"},
        {"role": "user", "content": "yes, in Paris"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"c":"P"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    await llm.chat(history)
    assert server.requests[0].json["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "A cat. Shall I check the weather?"}],
        },
        {"role": "user", "content": "yes, in Paris"},
        {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": '{"c":"P"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]


async def test_tools_and_tool_choice_go_flat(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}}
    await llm.chat(
        "hi",
        tools=[Tool(name="w", description="weather", parameters=params, strict=True)],
        tool_choice={"type": "function", "function": {"name": "w"}},
        parallel_tool_calls=False,
    )
    body = server.requests[0].json
    assert body["tools"] == [
        {
            "type": "function",
            "name": "w",
            "description": "weather",
            "parameters": params,
            "strict": True,
        }
    ]
    assert body["tool_choice"] == {"type": "function", "name": "w"}
    assert body["parallel_tool_calls"] is False


async def test_reasoning_effort_max_tokens_and_pass_through(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    await llm.chat(
        "hi",
        reasoning_effort="high",
        reasoning_summary="auto",
        max_tokens=500,
        previous_response_id="resp_1",
        store=False,
        temperature=0.3,
        not_a_responses_param=1,
        top_p=None,
    )
    body = server.requests[0].json
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["max_output_tokens"] == 500
    assert "max_tokens" not in body and "top_p" not in body
    assert body["previous_response_id"] == "resp_1"
    assert body["store"] is False
    assert body["temperature"] == 0.3
    # No place for it on this API: it is sent, so the server's error can say so.
    assert body["not_a_responses_param"] == 1


async def test_structured_output_goes_to_text_format(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    await llm.chat(
        "hi",
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "A", "schema": schema, "strict": True},
        },
    )
    assert server.requests[0].json["text"] == {
        "format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}
    }


async def test_stream_flag(server: LLMTestServer, llm: OpenAIResponsesCompatible) -> None:
    async for _ in llm.chat_stream("hi"):
        pass
    body = server.requests[0].json
    assert body["stream"] is True
    assert "stream_options" not in body


async def test_a_tools_images_go_in_its_function_call_output(
    server: LLMTestServer, llm: OpenAIResponsesCompatible
) -> None:
    content = [
        {"type": "text", "text": "a chart"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
    ]
    call = {"id": "c1", "type": "function", "function": {"name": "plot", "arguments": "{}"}}
    await llm.chat(
        [
            {"role": "user", "content": "plot"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": content},
        ]
    )
    assert server.requests[0].json["input"][-1] == {
        "type": "function_call_output",
        "call_id": "c1",
        "output": [
            {"type": "input_text", "text": "a chart"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
        ],
    }
