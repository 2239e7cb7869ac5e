"""Unknown is not invalid: event and item types the parser skips never fail a reply, whatever
their fields hold; the types it uses are still checked."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
import pytest

from llmplug import (
    Call,
    Completion,
    Done,
    LLMInterface,
    OpenAIResponsesCompatible,
    ResponseError,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    Usage,
)
from llmplug._plugins.openai_responses import ResponsesParser
from llmplug.testing import LLMTestServer, Raw

MakeLLM = Callable[..., LLMInterface]

# Real shapes from hosted tools: fields named like ours with other types.
TOOL_SEARCH = {
    "type": "tool_search_call",
    "id": "ts_1",
    "arguments": {"query": "weather"},
    "status": "completed",
}
ODD_ITEM = {"type": "image_generation_call", "id": "ig_1", "name": {}, "content": 5, "summary": "x"}
MESSAGE = {
    "type": "message",
    "id": "msg_1",
    "role": "assistant",
    "content": [
        {"type": "output_audio", "text": {"transcript": "no"}},
        {"type": "output_text", "text": "ok", "annotations": []},
    ],
}
REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [{"type": "summary_text", "text": "thought"}],
    "content": [{"type": "encrypted_blob", "text": [1, 2]}],
}
USAGE = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}


def frame(type_: str, named: bool, **fields: object) -> bytes:
    data = msgspec.json.encode({"type": type_, **fields})
    return (b"event: " + type_.encode() + b"\n" if named else b"") + b"data: " + data + b"\n\n"


def odd_stream(named: bool) -> list[bytes]:
    def ev(type_: str, **fields: object) -> bytes:
        return frame(type_, named, **fields)

    return [
        ev("response.created", response={"status": "in_progress", "output": "not a list"}),
        ev("response.output_item.added", output_index=0, item=TOOL_SEARCH),
        ev("response.tool_search_call.delta", item_id="ts_1", delta={"query": "wea"}),
        ev("response.output_item.done", output_index=0, item=TOOL_SEARCH),
        ev("response.output_item.added", output_index=1, item=ODD_ITEM),
        ev(
            "response.shell_call_output_content.delta",
            item_id="sh_1",
            output_index=2,
            delta={"stdout": "hi\n", "stderr": ""},
        ),
        ev("response.some_future_event", item="a string", response=7, arguments=[1]),
        ev("response.output_text.delta", item_id="msg_1", output_index=3, delta="ok"),
        ev(
            "response.completed",
            response={
                "status": "completed",
                "output": [TOOL_SEARCH, ODD_ITEM, MESSAGE],
                "usage": USAGE,
            },
        ),
    ]


@pytest.mark.parametrize("named", [True, False], ids=["event-lines", "data-only"])
async def test_stream_with_event_and_item_types_we_skip(
    server: LLMTestServer, make_llm: MakeLLM, named: bool
) -> None:
    server.push(Raw(chunks=odd_stream(named)))
    events = [e async for e in make_llm(interface=OpenAIResponsesCompatible).chat_stream("hi")]
    assert events[:-1] == [TextDelta("ok")]
    assert isinstance(events[-1], Done)
    c = events[-1].completion
    assert (c.text, c.tool_calls, c.finish_reason) == ("ok", [], "stop")
    assert c.usage == Usage(3, 2, 5)


async def test_body_with_item_and_part_types_we_skip(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    body = {
        "status": "completed",
        "output": [TOOL_SEARCH, ODD_ITEM, REASONING, MESSAGE],
        "usage": USAGE,
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    c = await make_llm(interface=OpenAIResponsesCompatible).chat("hi")
    assert (c.text, c.reasoning, c.tool_calls, c.finish_reason) == ("ok", "thought", [], "stop")


def parser() -> ResponsesParser:
    return ResponsesParser(Call(provider="p", model="m", wire="", base_url="", messages=[]))


def feed(p: ResponsesParser, name: str, payload: Mapping[str, object]) -> list[StreamEvent]:
    return p.feed(SSEEvent(name, msgspec.json.encode(payload)))


def test_the_event_line_names_an_event_whose_data_has_no_type() -> None:
    p = parser()
    assert feed(p, "response.output_text.delta", {"delta": "hi"}) == [TextDelta("hi")]
    feed(p, "response.completed", {"response": {"status": "completed"}})
    assert p.done and p.result().text == "hi"


def test_the_data_type_wins_over_the_event_line() -> None:
    p = parser()
    assert feed(p, "response.output_text.delta", {"type": "x.delta", "delta": {}}) == []
    assert feed(p, "x.delta", {"type": "response.output_text.delta", "delta": "a"}) == [
        TextDelta("a")
    ]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "response.output_text.delta", "delta": {"text": "x"}},
        {"type": "response.function_call_arguments.delta", "item_id": "f", "delta": {}},
        {
            "type": "response.output_item.added",
            "item": {"type": "function_call", "id": "f", "arguments": {"a": 1}},
        },
        {"type": "response.completed", "response": {"status": "completed", "usage": "lots"}},
        {"type": "response.completed", "response": "done"},
    ],
    ids=["text-delta", "arguments-delta", "function-call-item", "usage", "response"],
)
def test_a_broken_event_of_a_type_we_use_is_still_an_error(payload: dict[str, object]) -> None:
    p = parser()
    feed(p, "", {"type": "response.output_text.delta", "delta": "before"})
    with pytest.raises(StreamError, match="invalid JSON in a stream event") as info:
        feed(p, "", payload)
    assert info.value.partial == Completion(text="before")


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "error", "code": {"odd": 1}, "message": ["over", "loaded"], "param": 5},
        {"type": "response.failed", "response": {"error": {"code": 7, "message": {"a": 1}}}},
        {
            "type": "response.failed",
            "response": {
                "error": {"message": "boom"},
                "output": [{"type": "function_call", "arguments": 5}],
            },
        },
    ],
    ids=["error", "failed", "failed-with-broken-output"],
)
def test_an_error_event_of_any_shape_is_a_stream_error(payload: dict[str, object]) -> None:
    p = parser()
    feed(p, "", {"type": "response.output_text.delta", "delta": "before"})
    with pytest.raises(StreamError, match=r"error event|the response failed") as info:
        feed(p, "", payload)
    assert info.value.partial is not None and info.value.partial.text == "before"


@pytest.mark.parametrize(
    "item",
    [
        {"type": "message", "content": [{"type": "output_text", "text": 5}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": {"a": 1}},
        {"type": "reasoning", "summary": "a string"},
    ],
    ids=["message", "function-call", "reasoning"],
)
async def test_a_broken_item_of_a_type_we_use_fails_the_body(
    server: LLMTestServer, make_llm: MakeLLM, item: dict[str, object]
) -> None:
    body = {"status": "completed", "output": [TOOL_SEARCH, item]}
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    with pytest.raises(ResponseError, match="not a Responses API JSON body"):
        await make_llm(interface=OpenAIResponsesCompatible).chat("hi")
