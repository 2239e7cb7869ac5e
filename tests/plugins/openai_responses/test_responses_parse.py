"""What the openai-responses plugin makes of replies, and that callers cannot tell it from Chat."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import msgspec
import pytest

from llmplug import (
    Completion,
    Done,
    LLMError,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    ReasoningDelta,
    ResponseError,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from llmplug.testing import Error, LLMTestServer, Raw, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 8,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


@pytest.fixture
def llm(make_llm: MakeLLM) -> LLMInterface:
    return make_llm(interface=OpenAIResponsesCompatible)


async def collect(llm: LLMInterface) -> list[StreamEvent]:
    return [e async for e in llm.chat_stream("hi")]


def done(events: list[StreamEvent]) -> Completion:
    assert isinstance(events[-1], Done)
    return events[-1].completion


async def test_whole_reply(server: LLMTestServer, llm: LLMInterface) -> None:
    server.push(
        Reply(
            text="Sunny.",
            reasoning="check the tool",
            tool_calls=[ToolCallReply(name="w", arguments={"city": "Paris"}, id="call_7")],
            usage=USAGE,
        )
    )
    c = await llm.chat("hi")
    assert c.text == "Sunny."
    assert c.reasoning == "check the tool"
    assert [(t.id, t.name, t.parsed_arguments()) for t in c.tool_calls] == [
        ("call_7", "w", {"city": "Paris"})
    ]
    assert c.finish_reason == "tool_calls"
    assert c.usage == Usage(12, 8, 20, cached_tokens=4, reasoning_tokens=3)


async def test_refusal_and_incomplete_status(server: LLMTestServer, llm: LLMInterface) -> None:
    server.push(
        Reply(
            text="partial", refusal="I can't help with that", incomplete_reason="max_output_tokens"
        )
    )
    c = await llm.chat("hi")
    assert c.refusal == "I can't help with that"
    assert c.text == "partial"
    assert c.finish_reason == "length"


async def test_failed_body_raises(server: LLMTestServer, llm: LLMInterface) -> None:
    body = {
        "status": "failed",
        "error": {"code": "server_error", "message": "it broke"},
        "output": [],
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    with pytest.raises(ResponseError, match="it broke") as info:
        await llm.chat("hi")
    assert info.value.code == "server_error"


async def test_stream_text_reasoning_and_final_usage(
    server: LLMTestServer, llm: LLMInterface
) -> None:
    server.push(Reply(text="one two three", reasoning="hmm let me see", usage=USAGE))
    events = await collect(llm)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "one two three"
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "hmm let me see"
    c = done(events)
    assert c.text == "one two three" and c.reasoning == "hmm let me see"
    assert c.finish_reason == "stop"
    assert c.usage == Usage(12, 8, 20, cached_tokens=4, reasoning_tokens=3)


async def test_stream_function_calls_joined_by_item(
    server: LLMTestServer, llm: LLMInterface
) -> None:
    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="w", arguments={"city": "Paris"}, id="call_a"),
                ToolCallReply(name="t", arguments={"tz": "CET"}, id="call_b"),
            ]
        )
    )
    events = await collect(llm)
    firsts = [(e.index, e.id, e.name) for e in events if isinstance(e, ToolCallDelta) and e.id]
    assert firsts == [(0, "call_a", "w"), (1, "call_b", "t")]
    c = done(events)
    assert [(t.id, t.name, t.parsed_arguments()) for t in c.tool_calls] == [
        ("call_a", "w", {"city": "Paris"}),
        ("call_b", "t", {"tz": "CET"}),
    ]
    assert c.finish_reason == "tool_calls"


def ev(type_: str, **fields: object) -> bytes:
    return (
        b"event: "
        + type_.encode()
        + b"\ndata: "
        + msgspec.json.encode({"type": type_, **fields})
        + b"\n\n"
    )


async def test_arguments_keyed_by_item_not_call_id_and_unknown_events_skipped(
    server: LLMTestServer, llm: LLMInterface
) -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "f",
        "arguments": "",
    }
    server.push(
        Raw(
            chunks=[
                ev("response.created", response={"status": "in_progress"}),
                ev("response.web_search_call.searching", item_id="ws_1"),
                ev("response.output_item.added", output_index=0, item=item),
                ev(
                    "response.function_call_arguments.delta",
                    item_id="fc_1",
                    output_index=0,
                    delta='{"x"',
                ),
                ev(
                    "response.function_call_arguments.delta",
                    item_id="fc_1",
                    output_index=0,
                    delta=": 1}",
                ),
                ev("response.function_call_arguments.done", item_id="fc_1", arguments='{"x": 1}'),
                ev(
                    "response.completed",
                    response={"status": "completed", "output": [], "usage": None},
                ),
            ]
        )
    )
    c = done(await collect(llm))
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [("call_9", "f", '{"x": 1}')]


async def test_stream_without_terminal_event_is_truncated(
    server: LLMTestServer, llm: LLMInterface
) -> None:
    server.push(Raw(chunks=[ev("response.output_text.delta", item_id="m", delta="abc")]))
    with pytest.raises(StreamError, match="truncated") as info:
        await collect(llm)
    assert info.value.partial is not None and info.value.partial.text == "abc"


@pytest.mark.parametrize(
    ("error", "match", "code"),
    [
        (
            Error(status=500, message="overloaded", code="server_error", in_stream_after=2),
            "overloaded",
            "server_error",
        ),
        (
            Error(
                status=500,
                message="model crashed",
                code="server_error",
                in_stream_after=2,
                responses_event="response.failed",
            ),
            "the response failed: model crashed",
            "server_error",
        ),
    ],
)
async def test_error_and_failed_events_raise_with_code_and_partial(
    server: LLMTestServer, llm: LLMInterface, error: Error, match: str, code: str
) -> None:
    server.push(error)
    with pytest.raises(StreamError, match=match) as info:
        await collect(llm)
    assert info.value.code == code
    assert info.value.partial is not None and info.value.partial.text
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("max_output_tokens", "length"),
        ("content_filter", "content_filter"),
        ("a_reason_from_next_year", "a_reason_from_next_year"),
    ],
)
async def test_incomplete_reply_ends_normally_with_the_same_finish_reason_streamed_or_not(
    server: LLMTestServer, llm: LLMInterface, reason: str, finish: str
) -> None:
    # A reply cut by max_output_tokens is an answer (finish_reason "length", as on the Chat
    # wire), not a broken stream: the caller gets the partial text and the usage either way.
    reply = Reply(text="cut short here", incomplete_reason=reason, usage=USAGE)
    server.push(reply)
    whole = await llm.chat("hi")
    server.push(reply)
    events = await collect(llm)
    streamed = done(events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "cut short here"
    assert (streamed.text, streamed.finish_reason, streamed.usage) == (
        "cut short here",
        finish,
        Usage(12, 8, 20, cached_tokens=4, reasoning_tokens=3),
    )
    assert msgspec.structs.replace(whole, raw=None, response_id=None) == msgspec.structs.replace(
        streamed, response_id=None
    )


@pytest.mark.parametrize("reason", ["max_output_tokens", "content_filter"])
async def test_incomplete_reply_matches_the_chat_wire(
    server: LLMTestServer, make_llm: MakeLLM, reason: str
) -> None:
    reply = Reply(text="cut short", incomplete_reason=reason, usage=USAGE)
    results: list[Completion] = []
    for cls in (OpenAICompatible, OpenAIResponsesCompatible):
        server.push(reply)
        results.append(done(await collect(make_llm(interface=cls))))
    chat, resp = (msgspec.structs.replace(c, model=None, response_id=None) for c in results)
    assert chat == resp
    assert chat.finish_reason in ("length", "content_filter")


@pytest.mark.parametrize("stream", [False, True])
async def test_both_wires_give_the_same_completion(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    reply = Reply(
        text="same answer",
        tool_calls=[ToolCallReply(name="w", arguments={"a": 1}, id="call_1")],
        usage=USAGE,
    )
    results: list[Completion] = []
    for cls in (OpenAICompatible, OpenAIResponsesCompatible):
        server.push(reply)
        llm = make_llm(interface=cls)
        if stream:
            results.append(done(await collect(llm)))
        else:
            results.append(await llm.chat("hi"))
    chat, resp = (
        msgspec.structs.replace(c, raw=None, model=None, response_id=None) for c in results
    )
    assert chat == resp


async def test_invalid_json_event(server: LLMTestServer, llm: LLMInterface) -> None:
    server.push(Raw(chunks=[b"event: response.created\ndata: {oops\n\n"]))
    with pytest.raises(StreamError, match="invalid JSON"):
        await collect(llm)


async def test_stream_starting_with_a_bom_keeps_its_first_event(
    server: LLMTestServer, llm: LLMInterface
) -> None:
    # Without an event: line the BOM would sit right before "data" and hide the first event.
    events = [
        ev("response.output_text.delta", item_id="m", delta="first").split(b"\n", 1)[1],
        ev("response.output_text.delta", item_id="m", delta=" second"),
        ev("response.completed", response={"status": "completed", "output": []}),
    ]
    server.push(Raw(chunks=[b"\xef", b"\xbb\xbf" + events[0], *events[1:]]))
    out = await collect(llm)
    assert [e.text for e in out if isinstance(e, TextDelta)] == ["first", " second"]
    assert done(out).text == "first second"


async def test_json_body_starting_with_a_bom(server: LLMTestServer, llm: LLMInterface) -> None:
    body = {
        "status": "completed",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
    }
    server.push(
        Raw(body=b"\xef\xbb\xbf" + msgspec.json.encode(body), content_type="application/json")
    )
    c = await llm.chat("hi")
    assert (c.text, c.finish_reason) == ("ok", "stop")


@pytest.mark.parametrize("cls", [OpenAICompatible, OpenAIResponsesCompatible])
@pytest.mark.parametrize(
    ("error", "sent", "status"),
    [
        # OpenAI's names for a server failure: retried, as chat() retries the 500 it gets.
        (Error(status=500, message="boom", code="server_error", type="server_error"), 2, 500),
        (
            Error(
                status=500, message="boom", code="server_error", responses_event="response.failed"
            ),
            2,
            500,
        ),
        (Error(status=429, message="slow", code="rate_limit_exceeded"), 2, 429),
        # A bad request is the request's: raised at once, as chat() raises its 400.
        (
            Error(status=400, message="bad", code="invalid_prompt", type="invalid_request_error"),
            1,
            400,
        ),
    ],
)
async def test_an_error_event_before_any_output_is_retried_as_its_status_is(
    server: LLMTestServer,
    make_llm: MakeLLM,
    cls: type[LLMInterface],
    error: Error,
    sent: int,
    status: int,
) -> None:
    llm = make_llm(interface=cls)
    failing = dataclasses.replace(error, in_stream_after=0)
    server.push(failing, "fine")
    if sent == 2:
        assert done(await collect(llm)).text == "fine"
    else:
        with pytest.raises(StreamError) as streamed:
            await collect(llm)
        assert streamed.value.status == status
    assert len(server.requests) == sent
    # chat() decides the same on the same failure, sent as an HTTP status.
    server.clear()
    server.push(failing, "fine")
    if sent == 2:
        assert (await llm.chat("hi")).text == "fine"
    else:
        with pytest.raises(LLMError) as plain:
            await llm.chat("hi")
        assert plain.value.status == status
    assert len(server.requests) == sent
