"""What the anthropic-messages plugin sends, seen by a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmplug import LLMInterface
from llmplug.testing import LLMTestServer, Reply

Make = Callable[..., LLMInterface]
PNG = "data:image/png;base64,iVBORw0KGgo="


async def test_path_headers_system_and_default_max_tokens(
    server: LLMTestServer, anthropic: Make
) -> None:
    llm = anthropic()
    await llm.chat(
        [
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": "answer in French"},
            {"role": "user", "content": "hi"},
        ]
    )
    (req,) = server.requests
    assert (req.path, req.api, req.api_key) == ("/v1/messages", "anthropic", "sk-test-1")
    assert req.headers["x-api-key"] == "sk-test-1"
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.json == {
        "model": "test-model",
        "system": "be brief\n\nanswer in French",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 4096,
    }
    async for _ in llm.chat_stream("again"):
        pass
    assert server.requests[1].json["stream"] is True
    assert server.requests[1].headers["accept"] == "text/event-stream"


async def test_history_tool_use_and_merged_tool_results(
    server: LLMTestServer, anthropic: Make
) -> None:
    history: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what are these?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://x/y.jpg", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Cats. Checking the weather.",
            "tool_calls": [
                {
                    "id": "tu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "tu_2", "type": "function", "function": {"name": "photo", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "sunny"},
        {
            "role": "tool",
            "tool_call_id": "tu_2",
            "content": [
                {"type": "text", "text": "here"},
                {"type": "image_url", "image_url": {"url": PNG}},
            ],
        },
        {"role": "user", "content": "thanks, and now?"},
    ]
    await anthropic().chat(history)
    (req,) = server.requests
    png = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    assert req.json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what are these?"},
                {"type": "image", "source": png},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Cats. Checking the weather."},
                {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "tu_2", "name": "photo", "input": {}},
            ],
        },
        {
            # One user turn: both results (matched by id), then the user's text.
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_2",
                    "content": [{"type": "text", "text": "here"}, {"type": "image", "source": png}],
                },
                {"type": "text", "text": "thanks, and now?"},
            ],
        },
    ]
    assert [url for url, _ in req.images] == [PNG, "https://x/y.jpg", PNG]


async def test_cache_control_is_passed_through(server: LLMTestServer, anthropic: Make) -> None:
    eph = {"type": "ephemeral"}
    await anthropic().chat(
        [
            {"role": "system", "content": "a long prompt", "cache_control": eph},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "doc", "cache_control": eph},
                    {"type": "text", "text": "question"},
                ],
            },
        ]
    )
    (req,) = server.requests
    assert req.json["system"] == [{"type": "text", "text": "a long prompt", "cache_control": eph}]
    assert req.json["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "doc", "cache_control": eph},
                {"type": "text", "text": "question"},
            ],
        }
    ]


async def test_tools_and_tool_choice(server: LLMTestServer, anthropic: Make) -> None:
    llm = anthropic()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    choices: list[Any] = [
        "auto",
        "none",
        "required",
        {"type": "function", "function": {"name": "weather"}},
    ]
    for choice in choices:
        await llm.chat("hi", tools=tools, tool_choice=choice)
    await llm.chat("hi", tools=tools, parallel_tool_calls=False)
    sent = [r.json for r in server.requests]
    assert sent[0]["tools"] == [
        {
            "name": "weather",
            "description": "Weather of a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert [b["tool_choice"] for b in sent] == [
        {"type": "auto"},
        {"type": "none"},
        {"type": "any"},
        {"type": "tool", "name": "weather"},
        {"type": "auto", "disable_parallel_tool_use": True},
    ]


async def test_params_are_mapped_and_unknown_ones_pass(
    server: LLMTestServer, anthropic: Make
) -> None:
    llm = anthropic()
    await llm.chat(
        "hi",
        max_completion_tokens=100,
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop="END",
        user="u-1",
        stream_options={"include_usage": True},
    )
    assert server.requests[0].json == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
    }


async def test_reasoning_effort_becomes_thinking_with_room_for_the_answer(
    server: LLMTestServer, anthropic: Make
) -> None:
    llm = anthropic()
    await llm.chat("hi", reasoning_effort="high")
    await llm.chat("hi", reasoning_effort="low", max_tokens=8000)
    await llm.chat("hi", reasoning_effort="medium", max_tokens=500)
    sent = [(r.json["thinking"], r.json["max_tokens"]) for r in server.requests]
    assert sent == [
        ({"type": "enabled", "budget_tokens": 4096}, 4096 + 4096),
        ({"type": "enabled", "budget_tokens": 1024}, 8000),
        ({"type": "enabled", "budget_tokens": 2048}, 2048 + 500),
    ]


async def test_a_tool_loop_turn_goes_without_thinking(
    server: LLMTestServer, anthropic: Make
) -> None:
    # The API wants the signed thinking block back before a tool_use it continues, and a
    # neutral history has none: such a turn is sent without thinking rather than refused.
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "tu_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "tu_1", "content": "sunny"},
    ]
    await anthropic().chat(history, reasoning_effort="high")
    assert "thinking" not in server.requests[0].json


async def test_interface_headers_win(server: LLMTestServer, anthropic: Make) -> None:
    llm = anthropic(headers={"anthropic-version": "2099-01-01", "anthropic-beta": "x-2025"})
    server.push(Reply(text="ok"))
    await llm.chat("hi")
    headers = server.requests[0].headers
    assert (headers["anthropic-version"], headers["anthropic-beta"]) == ("2099-01-01", "x-2025")


async def test_typed_output_with_thinking_offers_the_answer_tool_unforced(
    server: LLMTestServer, anthropic: Make
) -> None:
    # Thinking allows no forced tool: the answer tool is offered, and its call is the answer.
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "Out", "schema": schema}}
    await anthropic().chat("hi", response_format=fmt, reasoning_effort="low")
    body = server.requests[0].json
    assert body["tool_choice"] == {"type": "auto"}
    assert body["tools"][0]["name"] == "Out" and body["tools"][0]["input_schema"] == schema
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
