"""Provider data: what a wire keeps with an assistant turn (the Responses API's encrypted
reasoning, Anthropic's signed thinking) comes back to it on the next turn, survives a history
saved as JSON, and is left out by every other wire, a group's other member included."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from llmplug import (
    Completion,
    Done,
    FunctionCall,
    LLMInterface,
    Message,
    MessageToolCall,
    ModelGroup,
    OpenAIResponsesCompatible,
)
from llmplug.testing import Error, LLMTestServer, Raw, Reply

SECRET = "gAAAAB-encrypted-reasoning"
SIGNATURE = "EqQBCgIYAhIM-signed"


def responses_body(call_id: str = "call_1") -> bytes:
    return msgspec.json.encode(
        {
            "id": "resp_1",
            "object": "response",
            "status": "completed",
            "model": "test-model",
            "output": [
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "look it up"}],
                    "encrypted_content": SECRET,
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": call_id,
                    "name": "lookup",
                    "arguments": '{"q": "x"}',
                },
            ],
            "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
        }
    )


def responses_stream() -> list[bytes]:
    body = json.loads(responses_body())
    reasoning, call = body["output"]
    events = [
        {"type": "response.output_item.added", "output_index": 0, "item": {**reasoning}},
        {"type": "response.output_item.done", "output_index": 0, "item": reasoning},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {"type": "response.output_item.done", "output_index": 1, "item": call},
        {"type": "response.completed", "response": body},
    ]
    events[0]["item"].pop("encrypted_content")  # added before the reasoning is done
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def anthropic_body() -> bytes:
    return msgspec.json.encode(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "test-model",
            "content": [
                {"type": "thinking", "thinking": "I should look", "signature": SIGNATURE},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 5, "output_tokens": 7},
        }
    )


def anthropic_stream() -> list[bytes]:
    def ev(kind: str, **fields: Any) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()

    return [
        ev("message_start", message={"id": "msg_1", "model": "m", "usage": {"input_tokens": 5}}),
        ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
        ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "I sh"}),
        ev(
            "content_block_delta",
            index=0,
            delta={"type": "thinking_delta", "thinking": "ould look"},
        ),
        ev(
            "content_block_delta",
            index=0,
            delta={"type": "signature_delta", "signature": SIGNATURE},
        ),
        ev("content_block_stop", index=0),
        ev(
            "content_block_start",
            index=1,
            content_block={"type": "redacted_thinking", "data": "opaque"},
        ),
        ev("content_block_stop", index=1),
        ev(
            "content_block_start",
            index=2,
            content_block={"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
        ),
        ev(
            "content_block_delta",
            index=2,
            delta={"type": "input_json_delta", "partial_json": '{"q": "x"}'},
        ),
        ev("content_block_stop", index=2),
        ev("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 7}),
        ev("message_stop"),
    ]


def saved_as_json(history: list[Message]) -> list[dict[str, Any]]:
    """A history as an application saves it and reads it back: plain JSON."""
    loaded: list[dict[str, Any]] = json.loads(msgspec.json.encode(history))
    return loaded


async def complete(llm: Any, stream: bool, messages: Any) -> Completion:
    if not stream:
        return await llm.chat(messages)  # type: ignore[no-any-return]
    done: Any = None
    async for ev in llm.chat_stream(messages):
        done = ev
    assert isinstance(done, Done)
    return done.completion


def next_turn(first: Completion, call_id: str) -> list[dict[str, Any]]:
    return saved_as_json(
        [
            Message(role="user", content="look up x"),
            first.to_message(),
            Message(role="tool", tool_call_id=call_id, content="x is 42"),
        ]
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_encrypted_reasoning_goes_back_on_the_next_turn(
    server: LLMTestServer, make_llm: Any, stream: bool
) -> None:
    if stream:
        server.push(Raw(chunks=responses_stream()))
    else:
        server.push(Raw(body=responses_body(), content_type="application/json"))
    server.push(Reply(text="it is 42"))
    llm = make_llm(interface=OpenAIResponsesCompatible)
    first = await complete(llm, stream, "look up x")
    assert first.tool_calls[0].name == "lookup"
    assert (await llm.chat(next_turn(first, "call_1"))).text == "it is 42"
    sent = server.requests[1].json["input"]
    assert [i.get("type") for i in sent] == [
        None,
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert sent[1] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [{"type": "summary_text", "text": "look it up"}],
        "encrypted_content": SECRET,
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_signed_thinking_goes_back_and_thinking_stays_on(
    server: LLMTestServer, make_llm: Any, stream: bool
) -> None:
    if stream:
        server.push(Raw(chunks=anthropic_stream()))
    else:
        server.push(Raw(body=anthropic_body(), content_type="application/json"))
    server.push(Reply(text="it is 42"))
    llm = make_llm(interface=LLMInterface, wire="anthropic-messages")
    first = await complete(llm, stream, "look up x")
    assert first.reasoning == "I should look"
    history = next_turn(first, "toolu_1")
    assert (await llm.chat(history, reasoning_effort="low")).text == "it is 42"
    body = server.requests[1].json
    assistant = body["messages"][1]["content"]
    assert assistant[:2] == [
        {"type": "thinking", "thinking": "I should look", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert assistant[2]["type"] == "tool_use"
    assert "thinking" in body  # the tool loop's next turn keeps thinking: it has its signature


def carrying_everyones_data() -> list[dict[str, Any]]:
    data = {
        "openai-responses": {"reasoning": [{"type": "reasoning", "encrypted_content": SECRET}]},
        "anthropic-messages": {"thinking": [{"type": "thinking", "signature": SIGNATURE}]},
        "gemini": {"parts": [{"thoughtSignature": "sig"}]},
    }
    assistant = Message(
        role="assistant",
        tool_calls=[
            MessageToolCall(
                id="c1",
                function=FunctionCall(name="lookup", arguments="{}"),
                provider_data={"gemini": {"thoughtSignature": "sig"}},
            )
        ],
        provider_data=data,
    )
    return saved_as_json(
        [
            Message(role="user", content="q"),
            assistant,
            Message(role="tool", tool_call_id="c1", content="r"),
        ]
    )


async def test_the_chat_wire_leaves_every_wires_data_out(
    server: LLMTestServer, make_llm: Any
) -> None:
    server.push(Reply(text="ok"))
    llm = make_llm()
    await llm.chat(carrying_everyones_data())
    sent = server.requests[0].body
    assert b"provider_data" not in sent and SECRET.encode() not in sent
    assert server.requests[0].json["messages"][1]["tool_calls"][0]["type"] == "function"


async def test_a_group_failing_over_between_wires_gives_each_only_its_own(
    server: LLMTestServer, make_llm: Any
) -> None:
    anthropic = make_llm(interface=LLMInterface, wire="anthropic-messages", max_retries=0)
    responses = make_llm(interface=OpenAIResponsesCompatible)
    server.push(Error(status=503, message="overloaded"), Reply(text="ok"))
    group = ModelGroup([anthropic], fallbacks=[responses])
    assert (await group.chat(carrying_everyones_data())).text == "ok"
    first, second = server.requests
    assert first.api == "anthropic" and second.api == "responses"
    assert SIGNATURE.encode() in first.body and SECRET.encode() not in first.body
    assert SECRET.encode() in second.body and SIGNATURE.encode() not in second.body
    assert b"provider_data" not in first.body + second.body
    await group.aclose()
