"""Responses streams whose events come in an order the happy path does not show."""

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
    SSEEvent,
    StreamEvent,
    ToolCallDelta,
)
from llmplug._plugins.openai_responses import ResponsesParser
from llmplug.testing import LLMTestServer, Raw

MakeLLM = Callable[..., LLMInterface]
ITEM = {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "f"}


def ev(type_: str, **fields: object) -> bytes:
    data = msgspec.json.encode({"type": type_, **fields})
    return b"event: " + type_.encode() + b"\ndata: " + data + b"\n\n"


def delta(piece: str) -> bytes:
    return ev("response.function_call_arguments.delta", item_id="fc_1", delta=piece)


def completed(*output: Mapping[str, object]) -> bytes:
    return ev("response.completed", response={"status": "completed", "output": list(output)})


async def stream(server: LLMTestServer, make_llm: MakeLLM, *chunks: bytes) -> list[StreamEvent]:
    server.push(Raw(chunks=list(chunks)))
    llm = make_llm(interface=OpenAIResponsesCompatible)
    return [e async for e in llm.chat_stream("hi")]


def done(events: list[StreamEvent]) -> Completion:
    assert isinstance(events[-1], Done)
    return events[-1].completion


@pytest.mark.parametrize(
    "late",
    [
        # The item is announced after its first argument deltas...
        [ev("response.output_item.added", item={**ITEM, "arguments": ""}), delta("1}")],
        # ...only when it is done...
        [delta("1}"), ev("response.output_item.done", item={**ITEM, "arguments": '{"x": 1}'})],
        # ...or only in the final response.
        [delta("1}")],
    ],
    ids=["added-late", "done-only", "completed-only"],
)
async def test_arguments_before_their_item_keep_the_calls_name_and_id(
    server: LLMTestServer, make_llm: MakeLLM, late: list[bytes]
) -> None:
    final = {**ITEM, "arguments": '{"x": 1}'}
    events = await stream(server, make_llm, delta('{"x": '), *late, completed(final))
    c = done(events)
    assert [(t.id, t.name, t.arguments) for t in c.tool_calls] == [("call_9", "f", '{"x": 1}')]
    assert c.finish_reason == "tool_calls"
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    # A consumer of the deltas alone can build the same call.
    assert {e.index for e in calls} == {0}
    assert [(e.id, e.name) for e in calls if e.id or e.name] == [("call_9", "f")]
    assert "".join(e.arguments for e in calls) == '{"x": 1}'


async def test_a_call_sent_whole_without_deltas_keeps_its_arguments(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # Some servers put the whole call in output_item.added and send no argument deltas.
    events = await stream(
        server,
        make_llm,
        ev("response.output_item.added", item={**ITEM, "arguments": '{"x": 1}'}),
        completed(),
    )
    assert [(t.id, t.name, t.arguments) for t in done(events).tool_calls] == [
        ("call_9", "f", '{"x": 1}')
    ]
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(e.arguments for e in calls) == '{"x": 1}'


def test_arguments_done_before_anything_else_is_kept() -> None:
    parser = ResponsesParser(Call(provider="p", model="m", wire="", base_url="", messages=[]))
    out: list[StreamEvent] = []
    for chunk in (
        ev("response.function_call_arguments.done", item_id="fc_1", arguments='{"x": 1}'),
        ev("response.output_item.done", item={**ITEM, "arguments": '{"x": 1}'}),
        completed(),
    ):
        name, data = chunk.split(b"\ndata: ")
        out += parser.feed(SSEEvent(name.removeprefix(b"event: ").decode(), data.strip()))
    assert parser.done
    assert [(t.id, t.name, t.arguments) for t in parser.result().tool_calls] == [
        ("call_9", "f", '{"x": 1}')
    ]
    calls = [e for e in out if isinstance(e, ToolCallDelta)]
    assert "".join(e.arguments for e in calls) == '{"x": 1}'
    assert [(e.id, e.name) for e in calls if e.id] == [("call_9", "f")]


def test_argument_deltas_without_item_id_go_to_the_call_at_their_output_index() -> None:
    # Compatible servers that leave item_id out must not have two calls' arguments merged.
    parser = ResponsesParser(Call(provider="p", model="m", wire="", base_url="", messages=[]))
    g = {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "g"}
    for type_, fields in (
        ("response.output_item.added", {"output_index": 0, "item": {**ITEM, "arguments": ""}}),
        ("response.output_item.added", {"output_index": 1, "item": {**g, "arguments": ""}}),
        ("response.function_call_arguments.delta", {"output_index": 1, "delta": '{"b"'}),
        ("response.function_call_arguments.delta", {"output_index": 0, "delta": '{"a": 1}'}),
        ("response.function_call_arguments.delta", {"output_index": 1, "delta": ": 2}"}),
        ("response.completed", {"response": {"status": "completed"}}),
    ):
        parser.feed(SSEEvent("", msgspec.json.encode({"type": type_, **fields})))
    assert [(t.id, t.name, t.arguments) for t in parser.result().tool_calls] == [
        ("call_9", "f", '{"a": 1}'),
        ("call_2", "g", '{"b": 2}'),
    ]
