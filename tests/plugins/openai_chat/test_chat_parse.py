"""What the openai-chat plugin makes of replies: bodies, streams and their broken forms."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from llmplug import (
    Call,
    Completion,
    Done,
    OpenAICompatible,
    ReasoningDelta,
    ResponseError,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmplug._plugins.openai_chat import ChatParser
from llmplug.testing import LLMTestServer, Raw, Reply, ToolCallReply

MakeLLM = Callable[..., OpenAICompatible]


async def collect(llm: OpenAICompatible) -> list[StreamEvent]:
    return [e async for e in llm.chat_stream("hi")]


def done(events: list[StreamEvent]) -> Completion:
    assert isinstance(events[-1], Done)
    assert not any(isinstance(e, Done) for e in events[:-1])
    return events[-1].completion


def sse(*payloads: object) -> list[bytes]:
    return [
        b"data: " + (p if isinstance(p, bytes) else msgspec.json.encode(p)) + b"\n\n"
        for p in payloads
    ]


async def test_whole_reply(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(
        Reply(
            text="Paris.",
            reasoning="thinking",
            tool_calls=[ToolCallReply("get_weather", {"city": "Paris"}, id="c9")],
            usage={
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        )
    )
    c = await make_llm().chat("hi")
    assert c.text == "Paris."
    assert c.reasoning == "thinking"
    assert c.tool_calls == [ToolCall("c9", "get_weather", '{"city":"Paris"}')]
    assert c.tool_calls[0].parsed_arguments() == {"city": "Paris"}
    assert c.finish_reason == "tool_calls"
    assert c.usage == Usage(11, 7, 18, cached_tokens=3, reasoning_tokens=2)
    assert isinstance(c.raw, bytes) and b"Paris." in c.raw
    assert c.to_message().tool_calls is not None


async def test_null_content_and_unknown_finish_reason_are_kept(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    body = {
        "choices": [{"index": 0, "message": {"content": None}, "finish_reason": "eos_custom"}],
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    c = await make_llm().chat("hi")
    assert c.text == ""
    assert c.finish_reason == "eos_custom"
    assert c.usage is None


async def test_stream_text_joins_exactly(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Reply(text="The quick  brown fox.\n"))
    events = await collect(make_llm())
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 1
    c = done(events)
    assert "".join(deltas) == c.text == "The quick  brown fox.\n"
    assert c.finish_reason == "stop"
    assert c.usage is not None and c.usage.output_tokens > 0


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_stream_reasoning_in_either_field(
    server: LLMTestServer, make_llm: MakeLLM, field: str
) -> None:
    server.push(Reply(text="42", reasoning="let me think", reasoning_field=field))
    events = await collect(make_llm())
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "let me think"
    assert done(events).reasoning == "let me think"


async def test_chunk_with_only_reasoning_is_not_dropped(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Raw(
            chunks=sse(
                {"choices": [{"index": 0, "delta": {"reasoning": "r1"}}]},
                {"choices": [{"index": 0, "delta": {"reasoning_content": "r2"}}]},
                {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]},
                b"[DONE]",
            )
        )
    )
    c = done(await collect(make_llm()))
    assert c.reasoning == "r1r2"
    assert c.text == "x"


async def test_stream_tool_call_fragments_joined_by_index(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Reply(
            tool_calls=[
                ToolCallReply("get_weather", {"city": "Paris", "unit": "C"}, id="a"),
                ToolCallReply("get_time", '{"tz": "CET"}', id="b"),
            ]
        )
    )
    events = await collect(make_llm())
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(pieces) > 2
    assert {(p.index, p.id, p.name) for p in pieces if p.id} == {
        (0, "a", "get_weather"),
        (1, "b", "get_time"),
    }
    c = done(events)
    assert c.finish_reason == "tool_calls"
    assert [(t.id, t.name, t.parsed_arguments()) for t in c.tool_calls] == [
        ("a", "get_weather", {"city": "Paris", "unit": "C"}),
        ("b", "get_time", {"tz": "CET"}),
    ]


async def test_interleaved_fragments_of_two_calls(server: LLMTestServer, make_llm: MakeLLM) -> None:
    def piece(i: int, **fn: str) -> dict[str, object]:
        extra = {"id": f"id{i}", "type": "function"} if "name" in fn else {}
        return {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": i, **extra, "function": fn}]}}
            ]
        }

    server.push(
        Raw(
            chunks=sse(
                piece(0, name="f", arguments=""),
                piece(1, name="g", arguments='{"b"'),
                piece(0, arguments='{"a": '),
                piece(1, arguments=": 2}"),
                piece(0, arguments="1}"),
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                b"[DONE]",
            )
        )
    )
    c = done(await collect(make_llm()))
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [
        ("id0", "f", '{"a": 1}'),
        ("id1", "g", '{"b": 2}'),
    ]


async def test_usage_chunk_with_empty_choices(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(
        Reply(text="hi", usage={"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6})
    )
    c = done(await collect(make_llm()))
    assert c.usage == Usage(5, 1, 6)


async def test_groq_usage(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(
        Reply(
            text="hi",
            usage_style="groq",
            usage={"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
        )
    )
    assert done(await collect(make_llm())).usage == Usage(9, 2, 11)


async def test_usage_is_not_overwritten_by_a_later_null(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    server.push(
        Raw(
            chunks=sse(
                {"choices": [{"index": 0, "delta": {"content": "a"}}], "usage": usage},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": None},
                b"[DONE]",
            )
        )
    )
    assert done(await collect(make_llm())).usage == Usage(3, 4, 7)


async def test_sse_framing_comments_crlf_multiline_and_split_chunks(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # CRLF line ends, an OpenRouter keep-alive comment, a JSON object split over two data:
    # lines, a lone-CR line end, and the bytes cut at awkward places.
    stream = (
        b": OPENROUTER PROCESSING\r\n\r\n"
        b'data: {"choices": [{"index": 0,\r\ndata: "delta": {"content": "he"}}]}\r\n\r\n'
        b'data:{"choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]}\r\r'
        b"event: message\nid: 7\nretry: 10\ndata: [DONE]\n\n"
    )
    cuts = [3, 17, 40, 41, 90, 91, 150, len(stream)]
    chunks = [stream[a:b] for a, b in zip([0, *cuts], cuts, strict=False)]
    server.push(Raw(chunks=chunks))
    c = done(await collect(make_llm()))
    assert c.text == "hello"
    assert c.finish_reason == "stop"


@pytest.mark.parametrize("burst", [False, True], ids=["event per chunk", "one chunk"])
async def test_error_object_mid_stream_raises_with_partial(
    server: LLMTestServer, make_llm: MakeLLM, burst: bool
) -> None:
    # In one chunk (a proxy that buffers), the events before the error still reach the
    # caller first: the error is a broken stream, never a retry, either way.
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"content": "par"}}]},
        {"error": {"message": "upstream overloaded", "code": 502}},
    )
    server.push(Raw(chunks=[b"".join(chunks)] if burst else chunks))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamError, match="upstream overloaded") as info:
        async for e in make_llm().chat_stream("hi"):
            seen.append(e)
    assert seen == [TextDelta("par")]
    assert info.value.status == 502
    assert info.value.partial is not None and info.value.partial.text == "par"
    assert len(server.requests) == 1  # output reached the caller: never retried


async def test_unreadable_event_after_output_in_the_same_chunk_is_a_broken_stream(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    chunks = sse({"choices": [{"index": 0, "delta": {"content": "par"}}]}, b"{not json")
    server.push(Raw(chunks=[b"".join(chunks)]))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamError, match="invalid JSON in a stream event") as info:
        async for e in make_llm().chat_stream("hi"):
            seen.append(e)
    assert seen == [TextDelta("par")]
    assert info.value.partial is not None and info.value.partial.text == "par"
    assert len(server.requests) == 1


async def test_whole_stream_in_one_chunk_gives_the_events_of_a_chunk_per_event(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        *({"choices": [{"index": 0, "delta": {"content": w}}]} for w in ("a", "b", "c")),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 3}},
        b"[DONE]",
    )
    server.push(Raw(chunks=chunks))
    apart = await collect(make_llm())
    server.push(Raw(chunks=[b"".join(chunks)]))
    together = await collect(make_llm())
    assert together == apart
    assert [e for e in together if isinstance(e, TextDelta)] == [TextDelta(w) for w in "abc"]
    assert done(together).usage == Usage(1, 3, 4)


async def test_stream_cut_before_done_is_an_error(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Raw(chunks=sse({"choices": [{"index": 0, "delta": {"content": "abc"}}]})))
    with pytest.raises(StreamError, match="truncated") as info:
        await collect(make_llm())
    assert info.value.partial is not None and info.value.partial.text == "abc"


async def test_invalid_json_in_one_event(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(
        Raw(
            chunks=sse(
                {"choices": [{"index": 0, "delta": {"content": "ok"}}]},
                b"{not json",
                b"[DONE]",
            )
        )
    )
    with pytest.raises(StreamError, match="invalid JSON") as info:
        await collect(make_llm())
    assert info.value.partial is not None and info.value.partial.text == "ok"


async def test_one_megabyte_event(server: LLMTestServer, make_llm: MakeLLM) -> None:
    big = "x" * (1 << 20)
    payload = msgspec.json.encode({"choices": [{"index": 0, "delta": {"content": big}}]})
    frames = [b"data: " + payload + b"\n\n", b"data: [DONE]\n\n"]
    # Delivered in 64 KiB pieces, as a network would.
    data = b"".join(frames)
    server.push(Raw(chunks=[data[i : i + 65536] for i in range(0, len(data), 65536)]))
    assert done(await collect(make_llm())).text == big


async def test_server_that_ignores_stream_answers_json(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    body = {
        "choices": [{"index": 0, "message": {"content": "whole"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    events = await collect(make_llm())
    assert events[:-1] == [TextDelta("whole")]
    assert done(events).usage == Usage(1, 1, 2)


@pytest.mark.parametrize(
    ("body", "ctype", "match"),
    [
        (b"<html>hello</html>", "text/html", "not a Chat Completions JSON body"),
        (b"", "application/json", "not a Chat Completions JSON body"),
        (b'{"choices": []}', "application/json", "no choices"),
        (b'{"error": {"message": "quota", "code": 429}}', "application/json", "quota"),
    ],
)
async def test_bad_200_bodies_raise_response_error(
    server: LLMTestServer, make_llm: MakeLLM, body: bytes, ctype: str, match: str
) -> None:
    server.push(Raw(body=body, content_type=ctype))
    with pytest.raises(ResponseError, match=match):
        await make_llm().chat("hi")
    assert len(server.requests) == 1


async def test_stream_starting_with_a_bom_keeps_its_first_event(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # Some proxies write a UTF-8 BOM before the first event; here it is even cut in two.
    first, *rest = sse(
        {"choices": [{"index": 0, "delta": {"content": "first"}}]},
        {"choices": [{"index": 0, "delta": {"content": " second"}, "finish_reason": "stop"}]},
        b"[DONE]",
    )
    server.push(Raw(chunks=[b"\xef\xbb", b"\xbf" + first, *rest]))
    events = await collect(make_llm())
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["first", " second"]
    assert done(events).text == "first second"


async def test_json_body_starting_with_a_bom(server: LLMTestServer, make_llm: MakeLLM) -> None:
    body = {"choices": [{"index": 0, "message": {"content": "ok"}, "finish_reason": "stop"}]}
    server.push(
        Raw(body=b"\xef\xbb\xbf" + msgspec.json.encode(body), content_type="application/json")
    )
    c = await make_llm().chat("hi")
    assert (c.text, c.finish_reason) == ("ok", "stop")


def tool_chunk(*pieces: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "choices": [{"index": 0, "delta": {"tool_calls": list(pieces)}, "finish_reason": finish}]
    }


async def test_tool_call_fragments_without_index_are_told_apart_by_id(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # Gemini's OpenAI layer sends no index: each call comes with its own id, and a fragment
    # with neither index nor id continues the call before it.
    server.push(
        Raw(
            chunks=sse(
                tool_chunk({"id": "a", "function": {"name": "f", "arguments": '{"x": '}}),
                tool_chunk({"function": {"arguments": "1}"}}),
                tool_chunk(
                    {"id": "b", "function": {"name": "g", "arguments": '{"y": 2}'}},
                    {"id": "c", "function": {"name": "h", "arguments": "{}"}},
                ),
                tool_chunk({"id": "c", "function": {"arguments": ""}}, finish="tool_calls"),
                b"[DONE]",
            )
        )
    )
    events = await collect(make_llm())
    assert [(e.index, e.id, e.name) for e in events if isinstance(e, ToolCallDelta) and e.name] == [
        (0, "a", "f"),
        (1, "b", "g"),
        (2, "c", "h"),
    ]
    c = done(events)
    assert [(t.id, t.name, t.parsed_arguments()) for t in c.tool_calls] == [
        ("a", "f", {"x": 1}),
        ("b", "g", {"y": 2}),
        ("c", "h", {}),
    ]


def test_unindexed_fragment_after_indexed_calls_gets_the_next_index() -> None:
    parser = ChatParser(
        Call(provider="p", model="m", wire="openai-chat", base_url="x", messages=[])
    )
    out: list[StreamEvent] = []
    for chunk in (
        tool_chunk({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}),
        tool_chunk({"id": "b", "function": {"name": "g", "arguments": "{"}}),
        tool_chunk({"function": {"arguments": "}"}}),
        b"[DONE]",
    ):
        data = chunk if isinstance(chunk, bytes) else msgspec.json.encode(chunk)
        out += parser.feed(SSEEvent("", data))
    assert [(e.index, e.id, e.arguments) for e in out if isinstance(e, ToolCallDelta)] == [
        (0, "a", "{}"),
        (1, "b", "{"),
        (1, None, "}"),
    ]
    assert [(t.id, t.arguments) for t in parser.result().tool_calls] == [("a", "{}"), ("b", "{}")]


def mistral_delta(*parts: object) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": {"content": list(parts)}}]}


THINKING = {"type": "thinking", "thinking": [{"type": "text", "text": "let me see"}]}
REFERENCE = {"type": "reference", "reference_ids": [1, 2], "text": {"not": "a string"}}


async def test_content_as_a_list_of_typed_parts(server: LLMTestServer, make_llm: MakeLLM) -> None:
    # Mistral's reasoning models send content as a list of parts: thinking (the reasoning),
    # text, and types we skip whatever they hold.
    server.push(
        Raw(
            chunks=sse(
                mistral_delta(THINKING),
                mistral_delta({"type": "text", "text": "The answer"}, REFERENCE),
                {"choices": [{"index": 0, "delta": {"content": " is 4."}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                b"[DONE]",
            )
        )
    )
    events = await collect(make_llm())
    assert [
        (type(e).__name__, e.text) for e in events if isinstance(e, TextDelta | ReasoningDelta)
    ] == [
        ("ReasoningDelta", "let me see"),
        ("TextDelta", "The answer"),
        ("TextDelta", " is 4."),
    ]
    c = done(events)
    assert (c.text, c.reasoning) == ("The answer is 4.", "let me see")


async def test_body_content_as_a_list_of_typed_parts(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    message = {"content": [THINKING, REFERENCE, {"type": "text", "text": "4"}]}
    body = {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    server.push(Raw(body=msgspec.json.encode(body), content_type="application/json"))
    c = await make_llm().chat("hi")
    assert (c.text, c.reasoning) == ("4", "let me see")


async def test_a_text_part_that_is_not_text_is_an_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Raw(
            chunks=sse(
                {"choices": [{"index": 0, "delta": {"content": "ok"}}]},
                mistral_delta({"type": "text", "text": {"oops": 1}}),
                b"[DONE]",
            )
        )
    )
    with pytest.raises(StreamError, match="invalid JSON") as info:
        await collect(make_llm())
    assert info.value.partial is not None and info.value.partial.text == "ok"
