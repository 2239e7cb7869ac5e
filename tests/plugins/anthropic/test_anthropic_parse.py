"""What the anthropic-messages parser makes of every event and block, over a real server:
Anthropic's own shapes, llama-server's quirks, and types it does not know."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from llmplug import (
    Completion,
    Done,
    LLMInterface,
    ReasoningDelta,
    ResponseError,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmplug.testing import Error, LLMTestServer, Raw, Reply
from llmplug_anthropic import rate_limits

Make = Callable[..., LLMInterface]
JSON = "application/json"


def ev(type_: str, named: bool = True, **fields: Any) -> bytes:
    data = msgspec.json.encode({"type": type_, **fields})
    return (b"event: " + type_.encode() + b"\n" if named else b"") + b"data: " + data + b"\n\n"


def delta(index: int, **d: Any) -> bytes:
    return ev("content_block_delta", index=index, delta=d)


START = ev(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "usage": {
            "input_tokens": 10,
            "output_tokens": 1,
            "cache_read_input_tokens": 90,
            "cache_creation_input_tokens": 5,
        },
    },
)


async def collect(llm: LLMInterface, **kw: Any) -> list[StreamEvent]:
    return [e async for e in llm.chat_stream("hi", **kw)]


async def streamed(llm: LLMInterface) -> tuple[list[StreamEvent], Completion]:
    """A stream's events before ``Done``, and the completion ``Done`` carries."""
    *events, done = await collect(llm)
    assert isinstance(done, Done)
    return events, done.completion


async def test_every_event_of_a_full_stream(server: LLMTestServer, anthropic: Make) -> None:
    server.push(
        Raw(
            chunks=[
                START,
                ev("ping"),
                ev(
                    "content_block_start",
                    index=0,
                    content_block={"type": "thinking", "thinking": ""},
                ),
                delta(0, type="thinking_delta", thinking="Let me "),
                delta(0, type="thinking_delta", thinking="think."),
                delta(0, type="signature_delta", signature="EqQBCkYIAR"),
                ev("content_block_stop", index=0),
                ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
                delta(1, type="text_delta", text="Checking"),
                delta(1, type="text_delta", text=" now."),
                ev("content_block_stop", index=1),
                ev(
                    "content_block_start",
                    index=2,
                    content_block={
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {},
                    },
                ),
                delta(2, type="input_json_delta", partial_json=""),
                delta(2, type="input_json_delta", partial_json='{"city": '),
                delta(2, type="input_json_delta", partial_json='"Paris"}'),
                ev("content_block_stop", index=2),
                ev(
                    "message_delta",
                    delta={"stop_reason": "tool_use", "stop_sequence": None},
                    usage={"output_tokens": 42},
                ),
                ev("message_stop"),
            ]
        )
    )
    events, c = await streamed(anthropic())
    assert events == [
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        TextDelta("Checking"),
        TextDelta(" now."),
        ToolCallDelta(index=0, id="toolu_1", name="weather"),
        ToolCallDelta(index=0, arguments='{"city": '),
        ToolCallDelta(index=0, arguments='"Paris"}'),
    ]
    assert (c.text, c.reasoning, c.finish_reason, c.model) == (
        "Checking now.",
        "Let me think.",
        "tool_calls",
        "claude-x",
    )
    assert c.tool_calls == [ToolCall(id="toolu_1", name="weather", arguments='{"city": "Paris"}')]
    # The neutral input is the whole prompt: Anthropic's input + cache reads + cache writes.
    assert c.usage == Usage(input_tokens=105, output_tokens=42, total_tokens=147, cached_tokens=90)


async def test_llama_server_quirks(server: LLMTestServer, anthropic: Make) -> None:
    # No message_start (llama-server drops it when the first token is half a UTF-8 character),
    # a tool_use start without input, ':' comments and no ping, a stop sequence reported as
    # end_turn, and input_tokens without the cached ones.
    server.push(
        Raw(
            chunks=[
                b": keep-alive\n\n",
                ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                delta(0, type="text_delta", text="\u00e9t\u00e9"),
                ev("content_block_stop", index=0),
                ev(
                    "content_block_start",
                    index=1,
                    content_block={"type": "tool_use", "id": "call_x", "name": "f"},
                ),
                delta(1, type="input_json_delta", partial_json='{"a": 1}'),
                ev("content_block_stop", index=1),
                b": still here\n\n",
                ev(
                    "message_delta",
                    delta={"stop_reason": "end_turn", "stop_sequence": "END"},
                    usage={"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 4},
                ),
                ev("message_stop"),
            ]
        )
    )
    _, c = await streamed(anthropic())
    assert c.text == "\u00e9t\u00e9"
    assert c.tool_calls == [ToolCall(id="call_x", name="f", arguments='{"a": 1}')]
    assert c.finish_reason == "stop"
    assert c.usage == Usage(input_tokens=11, output_tokens=3, total_tokens=14, cached_tokens=4)


async def test_a_call_sent_whole_in_its_start_event(server: LLMTestServer, anthropic: Make) -> None:
    server.push(
        Raw(
            chunks=[
                START,
                ev(
                    "content_block_start",
                    index=0,
                    content_block={
                        "type": "tool_use",
                        "id": "t1",
                        "name": "f",
                        "input": {"x": [1, 2]},
                    },
                ),
                ev("content_block_stop", index=0),
                ev("message_delta", delta={"stop_reason": "tool_use"}),
                ev("message_stop"),
            ]
        )
    )
    events, c = await streamed(anthropic())
    joined = "".join(e.arguments for e in events if isinstance(e, ToolCallDelta))
    assert c.tool_calls == [ToolCall(id="t1", name="f", arguments='{"x":[1,2]}')]
    assert joined == '{"x":[1,2]}'  # the stream alone gives the same arguments


async def test_types_we_do_not_use_are_skipped_whatever_they_hold(
    server: LLMTestServer, anthropic: Make
) -> None:
    server.push(
        Raw(
            chunks=[
                START,
                ev(
                    "content_block_start",
                    index=0,
                    content_block={"type": "server_tool_use", "id": 5, "name": {}, "input": "q"},
                ),
                delta(0, type="server_tool_delta", partial_json={"not": "a string"}),
                ev("content_block_stop", index=0),
                ev(
                    "content_block_start",
                    index=1,
                    content_block={"type": "web_search_tool_result", "content": [{"text": 1}]},
                ),
                ev("content_block_start", index=2, content_block={"type": "text", "text": ""}),
                delta(2, type="citations_delta", citation={"cited_text": 3}, text=[1]),
                delta(2, type="text_delta", text="found it"),
                ev("content_block_stop", index=2),
                ev("brand_new_event", index="x", delta=7),
                # A type that is not even a string names no type of ours either.
                b'event: odd\ndata: {"type": {"x": 1}, "index": 2}\n\n',
                b'data: {"type": [1]}\n\n',
                ev("content_block_start", index=3, content_block={"type": [1]}),
                delta(3, type={"not": "a tag"}, text="x"),
                ev("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}),
                ev("message_stop"),
            ]
        )
    )
    events, _ = await streamed(anthropic())
    assert events == [TextDelta("found it")]


@pytest.mark.parametrize(
    "broken",
    [
        delta(0, type="text_delta", text=5),
        ev("content_block_start", index=0, content_block={"type": "tool_use", "id": []}),
        ev("message_delta", delta={"stop_reason": 3}),
        b"data: {not json\n\n",
    ],
)
async def test_a_broken_event_of_a_type_we_use_is_an_error(
    server: LLMTestServer, anthropic: Make, broken: bytes
) -> None:
    server.push(Raw(chunks=[START, broken, ev("message_stop")]))
    with pytest.raises(StreamError, match="invalid JSON"):
        await collect(anthropic(max_retries=0))


async def test_an_error_event_raises_with_its_type_and_message(
    server: LLMTestServer, anthropic: Make
) -> None:
    server.push(Error(in_stream_after=2, type="invalid_request_error", message="too long"))
    with pytest.raises(StreamError) as info:
        await collect(anthropic(max_retries=0))
    err = info.value
    assert "too long" in err.message
    assert (err.type, err.status) == ("invalid_request_error", 400)
    assert err.partial is not None and err.partial.text == "a b"


async def test_an_overloaded_error_event_is_retried(server: LLMTestServer, anthropic: Make) -> None:
    server.push(
        Error(in_stream_after=0, type="overloaded_error", message="Overloaded"),
        Reply(text="fine now"),
    )
    _, c = await streamed(anthropic())
    assert len(server.requests) == 2
    assert c.text == "fine now"


async def test_a_stream_cut_before_message_stop_is_truncated(
    server: LLMTestServer, anthropic: Make
) -> None:
    server.push(
        Raw(
            chunks=[
                START,
                ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                delta(0, type="text_delta", text="half"),
            ]
        )
    )
    with pytest.raises(StreamError) as info:
        await collect(anthropic(max_retries=0))
    assert info.value.partial is not None and info.value.partial.text == "half"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),
    ],
)
async def test_stop_reasons_become_chat_finish_reasons(
    server: LLMTestServer, anthropic: Make, stop_reason: str, finish: str
) -> None:
    body = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type=JSON))
    assert (await anthropic().chat("hi")).finish_reason == finish


async def test_a_body_with_block_types_we_skip(server: LLMTestServer, anthropic: Make) -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "redacted_thinking", "data": 5},
            {"type": "server_tool_use", "id": 1, "name": [], "input": "x"},
            {"type": "text", "text": "Hello", "citations": [{"type": "x"}]},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 2, "cache_creation_input_tokens": 10},
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type=JSON))
    c = await anthropic().chat("hi")
    assert (c.text, c.reasoning, c.finish_reason, c.model) == (
        "Hello",
        "hmm",
        "tool_calls",
        "claude-x",
    )
    assert c.tool_calls == [ToolCall(id="t1", name="f", arguments='{"a":1}')]
    assert c.usage == Usage(input_tokens=13, output_tokens=2, total_tokens=15, cached_tokens=0)


async def test_an_error_body_in_a_200_and_a_broken_block(
    server: LLMTestServer, anthropic: Make
) -> None:
    err = {"type": "error", "error": {"type": "api_error", "message": "internal"}}
    server.push(Raw(body=msgspec.json.encode(err), content_type=JSON))
    with pytest.raises(ResponseError, match="internal"):
        await anthropic().chat("hi")
    broken = {"type": "message", "content": [{"type": "text", "text": 5}]}
    server.push(Raw(body=msgspec.json.encode(broken), content_type=JSON))
    with pytest.raises(ResponseError, match="Anthropic Messages"):
        await anthropic().chat("hi")


def test_rate_limit_headers() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:01:00+00:00",
    }
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    limits = rate_limits(headers, now=now)
    assert limits is not None
    assert (limits.remaining_requests, limits.remaining_tokens) == (49, 0)
    assert (limits.reset_requests, limits.reset_tokens) == (30.0, 60.0)
    assert limits.used_up and limits.reset == 60.0
    assert rate_limits({"content-type": "application/json"}) is None
    odd = rate_limits(
        {
            "anthropic-ratelimit-requests-remaining": "x",
            "anthropic-ratelimit-input-tokens-remaining": "7",
            "anthropic-ratelimit-input-tokens-reset": "soon",
        }
    )
    assert odd is not None and (odd.remaining_requests, odd.remaining_tokens) == (None, 7)
    assert odd.reset_tokens is None
