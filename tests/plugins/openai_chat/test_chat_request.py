"""What the openai-chat plugin sends, seen by a real server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from llmplug import ConfigError, Message, OpenAICompatible, TextPart, Tool
from llmplug.testing import LLMTestServer, Reply

MakeLLM = Callable[..., OpenAICompatible]


async def test_body_has_model_messages_and_params_as_given(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()
    await llm.chat([{"role": "user", "content": "hi"}], temperature=0.2, seed=7, foo={"x": 1})
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.json == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "seed": 7,
        "foo": {"x": 1},
    }
    assert req.headers["authorization"] == "Bearer sk-test-1"
    assert req.headers["content-type"] == "application/json"


async def test_none_values_are_never_sent(server: LLMTestServer, make_llm: MakeLLM) -> None:
    llm = make_llm(api_params={"top_p": None, "temperature": 0.5})
    await llm.chat("hi", tools=None, max_tokens=None, stop=None)
    body = server.requests[0].json
    assert "tools" not in body and "max_tokens" not in body and "stop" not in body
    assert "top_p" not in body
    assert body["temperature"] == 0.5


async def test_call_kwargs_override_api_params(server: LLMTestServer, make_llm: MakeLLM) -> None:
    llm = make_llm(api_params={"temperature": 0.9, "max_tokens": 50})
    await llm.chat("hi", temperature=0.1)
    body = server.requests[0].json
    assert body["temperature"] == 0.1
    assert body["max_tokens"] == 50


async def test_history_with_images_tool_calls_and_results(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    await make_llm().chat(history)
    assert server.requests[0].json["messages"] == [
        {"role": "system", "content": "be brief"},
        history[1],
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "function": {"name": "f", "arguments": "{}"}, "type": "function"}
            ],
        },
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
    ]


async def test_message_structs_and_a_plain_string_are_accepted(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()
    await llm.chat([Message(role="user", content=[TextPart("a")])])
    await llm.chat("just text")
    assert server.requests[0].json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}]}
    ]
    assert server.requests[1].json["messages"] == [{"role": "user", "content": "just text"}]


async def test_tools_in_every_accepted_form_go_out_in_chat_shape(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    params = {"type": "object", "properties": {"city": {"type": "string"}}}
    tools: list[Any] = [
        Tool(name="a", description="A", parameters=params, strict=True),
        {"type": "function", "function": {"name": "b", "parameters": params}},
        {"name": "c", "description": "C", "parameters": params},
    ]
    await make_llm().chat("hi", tools=tools, tool_choice="auto")
    body = server.requests[0].json
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "a", "description": "A", "parameters": params, "strict": True},
        },
        {"type": "function", "function": {"name": "b", "parameters": params}},
        {"type": "function", "function": {"name": "c", "description": "C", "parameters": params}},
    ]


async def test_stream_asks_for_usage(server: LLMTestServer, make_llm: MakeLLM) -> None:
    async for _ in make_llm().chat_stream("hi"):
        pass
    body = server.requests[0].json
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert server.requests[0].headers["accept"] == "text/event-stream"


async def test_configured_headers_are_sent(server: LLMTestServer, make_llm: MakeLLM) -> None:
    await make_llm(headers={"HTTP-Referer": "https://example.org"}).chat("hi")
    assert server.requests[0].headers["http-referer"] == "https://example.org"


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([{"content": "no role"}], "invalid messages"),
        ([{"role": "user", "content": [{"type": "video", "url": "x"}]}], "invalid messages"),
        ([{"role": "user", "content": 5}], "invalid messages"),
        ([{"role": 5, "content": "x"}], "invalid messages"),
    ],
)
async def test_bad_messages_raise_before_sending(
    server: LLMTestServer, make_llm: MakeLLM, messages: Any, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        await make_llm().chat(messages)
    assert server.requests == []


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "s"}, {"role": "user", "content": ""}],
        [{"role": "user", "content": "hi"}, {"role": "user", "content": "x", "name": "n"}],
        [{"role": "user", "content": [{"type": "text", "text": "parts"}]}],
    ],
)
def test_dict_messages_become_what_msgspec_makes_of_them(messages: list[dict[str, Any]]) -> None:
    from llmplug._vocab._inputs import as_messages

    assert as_messages(messages) == msgspec.convert(messages, list[Message])


async def test_stream_keyword_is_rejected(make_llm: MakeLLM) -> None:
    with pytest.raises(ConfigError, match="chat_stream"):
        await make_llm().chat("hi", stream=True)


async def test_a_non_dict_tool_is_rejected(make_llm: MakeLLM) -> None:
    with pytest.raises(ConfigError, match="a tool must be"):
        await make_llm().chat("hi", tools=[42])  # type: ignore[list-item]


async def test_default_reply_is_echo(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Reply(text="pong"))
    assert (await make_llm().chat("ping")).text == "pong"
    assert (await make_llm().chat("ping")).text == "echo: ping"


async def test_a_tools_images_follow_the_turns_tool_results_in_one_user_message(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # A Chat tool message takes text only, and nothing may come between a turn's tool results.
    image = {"type": "image_url", "image_url": {"url": "https://x/chart.png"}}
    calls = [
        {"id": "c1", "type": "function", "function": {"name": "plot", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "count", "arguments": "{}"}},
    ]
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "plot and count"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {
            "role": "tool",
            "tool_call_id": "c1",
            "content": [{"type": "text", "text": "a chart"}, image],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "3"},
        {"role": "assistant", "content": "Done."},
    ]
    await make_llm().chat(history)
    sent = server.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool", "user", "assistant"]
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": "a chart\n\n(1 image(s) follow in the next user message.)",
    }
    assert sent[3] == {"role": "tool", "tool_call_id": "c2", "content": "3"}
    assert sent[4]["content"] == [
        {"type": "text", "text": "The image(s) returned by plot (c1):"},
        image,
    ]


async def test_cache_control_is_sent_as_given(server: LLMTestServer, make_llm: MakeLLM) -> None:
    # OpenRouter and LiteLLM take Anthropic's cache marker on Chat messages and parts.
    eph = {"type": "ephemeral"}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "long", "cache_control": eph},
        {"role": "user", "content": [{"type": "text", "text": "doc", "cache_control": eph}]},
    ]
    await make_llm().chat(messages)
    assert server.requests[0].json["messages"] == messages
