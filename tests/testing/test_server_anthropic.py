"""LLMTestServer's Anthropic Messages route, driven with plain httpx2 (no other llmplug
module): the shapes a client of the real API expects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from llmplug.testing import Error, Fault, LLMTestServer, Reply, ToolCallReply

from .test_server import parse_sse

BODY = {"model": "claude-x", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
HEADERS = {"x-api-key": "sk-ant-1", "anthropic-version": "2023-06-01"}


@pytest.fixture
def client(server: LLMTestServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, timeout=5.0, headers=HEADERS) as c:
        yield c


def stream(client: httpx2.Client, path: str = "/messages") -> list[dict[str, Any]]:
    with client.stream("POST", path, json={**BODY, "stream": True}) as response:
        assert response.status_code == 200
        events = parse_sse(response.iter_lines())
    for e in events:
        assert json.loads(e["data"])["type"] == e["event"]  # the event line names the data
    return [json.loads(e["data"]) for e in events]


def test_whole_message_and_recorded_request(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(
        Reply(
            text="Let me look.",
            reasoning="hmm",
            tool_calls=[ToolCallReply("weather", {"city": "Paris"}, id="toolu_1")],
            usage={
                "prompt_tokens": 30,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 20},
            },
        )
    )
    body = client.post("/messages", json=BODY).json()
    assert body["type"] == "message" and body["model"] == "claude-x"
    assert body["content"] == [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
    ]
    assert body["stop_reason"] == "tool_use"
    # Anthropic leaves the cached tokens out of input_tokens.
    assert body["usage"] == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 20,
        "cache_creation_input_tokens": 0,
    }
    (req,) = server.requests
    assert (req.api, req.api_key, req.path, req.last_user_text) == (
        "anthropic",
        "sk-ant-1",
        "/v1/messages",
        "hi",
    )


def test_stream_events_in_order(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Reply(text="a b", tool_calls=[ToolCallReply("f", {"x": 1}, id="t1")]))
    events = stream(client)
    types = [e["type"] for e in events]
    assert types[:2] == ["message_start", "ping"]
    assert types[-2:] == ["message_delta", "message_stop"]
    text = "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    args = "".join(
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    )
    assert (text, json.loads(args)) == ("a b", {"x": 1})
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert starts[1] == {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_errors_in_anthropic_shape(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Error(status=529, message="Overloaded"), Error(status=400, type="x", message="no"))
    first = client.post("/messages", json=BODY)
    assert first.status_code == 529
    assert first.json() == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    assert client.post("/messages", json=BODY).json()["error"] == {"type": "x", "message": "no"}
    server.push(Error(in_stream_after=1, status=529, message="Overloaded"))
    events = stream(client)
    assert events[-1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_faults_speak_anthropic_too(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Fault("stall_after_headers", seconds=0.01))
    events = stream(client, "/messages")
    assert events[-1] == {"type": "message_stop"}
