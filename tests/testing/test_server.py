"""LLMTestServer over real sockets, driven with plain httpx2 (no other llmplug module)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from llmplug.testing import (
    Error,
    Fault,
    LLMTestServer,
    Raw,
    RecordedRequest,
    Reply,
    ToolCallReply,
)

CORE = Path(__file__).resolve().parents[2] / "core"
MESSAGES = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def client(server: LLMTestServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.base_url, timeout=5.0) as c:
        yield c


def parse_sse(lines: Iterable[str]) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        if not line:
            if current:
                events.append(current)
                current = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        current[name] = f"{current[name]}\n{value}" if name in current else value
    if current:
        events.append(current)
    return events


def stream_events(client: httpx2.Client, path: str, body: dict[str, Any]) -> list[dict[str, str]]:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse(response.iter_lines())


def chat_chunks(events: list[dict[str, str]]) -> list[dict[str, Any]]:
    assert events[-1]["data"] == "[DONE]"
    return [json.loads(e["data"]) for e in events[:-1]]


def deltas(chunks: list[dict[str, Any]], key: str) -> list[str]:
    return [c["choices"][0]["delta"][key] for c in chunks if key in c["choices"][0]["delta"]]


def read_lines(client: httpx2.Client, path: str, body: dict[str, Any], sink: list[str]) -> None:
    """Stream a response into `sink` line by line, so what arrived before an error is kept."""
    with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            sink.append(line)


def chat(client: httpx2.Client, **body: Any) -> list[dict[str, Any]]:
    return chat_chunks(stream_events(client, "/chat/completions", {"messages": MESSAGES, **body}))


def resp_events(client: httpx2.Client, **body: Any) -> list[dict[str, Any]]:
    events = stream_events(client, "/responses", {"input": "hi", **body})
    data = [json.loads(e["data"]) for e in events]
    assert [e["event"] for e in events] == [d["type"] for d in data]
    return data


# -- Chat Completions ------------------------------------------------------------------------


def test_chat_non_stream(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Reply(text="Hello there friend"))
    r = client.post("/chat/completions", json={"model": "gpt-x", "messages": MESSAGES})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-x"
    assert body["choices"][0]["finish_reason"] == "stop"
    message = body["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "Hello there friend", "refusal": None}
    usage = body["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + 3
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 0}


def test_chat_non_stream_tool_calls_reasoning_refusal(
    server: LLMTestServer, client: httpx2.Client
) -> None:
    server.push(
        Reply(
            reasoning="let me think",
            reasoning_field="reasoning",
            tool_calls=[
                ToolCallReply("get_weather", {"city": "Paris"}),
                ToolCallReply("f", "{}", "x"),
            ],
            refusal="nope",
            model="forced",
        )
    )
    body = client.post("/chat/completions", json={"model": "m", "messages": MESSAGES}).json()
    assert body["model"] == "forced"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["reasoning"] == "let me think"
    assert "reasoning_content" not in message
    assert message["refusal"] == "nope"
    assert message["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ]
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


def test_chat_stream_deltas_join_to_text(server: LLMTestServer, client: httpx2.Client) -> None:
    text = "  Hello,  wide\nworld \t"
    server.push(Reply(text=text, reasoning="hmm ok"))
    chunks = chat(client, model="m")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m" for c in chunks)
    assert "".join(deltas(chunks, "reasoning_content")) == "hmm ok"
    pieces = deltas(chunks, "content")
    assert len(pieces) > 1
    assert "".join(pieces) == text
    last = chunks[-1]["choices"][0]
    assert last == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert all("usage" not in c for c in chunks)


def test_chat_stream_explicit_chunks(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Reply(chunks=["He", "", "llo"]), Reply(text="abcdefgh", chunks=3))
    assert deltas(chat(client), "content") == ["He", "", "llo"]
    assert deltas(chat(client), "content") == ["abc", "def", "gh"]


def test_chat_stream_tool_call_fragments(server: LLMTestServer, client: httpx2.Client) -> None:
    calls = [
        ToolCallReply("search", {"query": "weather in Paris", "limit": 3}),
        ToolCallReply("noop", "{}", id="call_custom"),
    ]
    server.push(Reply(tool_calls=calls))
    chunks = chat(client)
    fragments: dict[int, list[dict[str, Any]]] = {}
    for c in chunks:
        for fragment in c["choices"][0]["delta"].get("tool_calls", []):
            fragments.setdefault(fragment["index"], []).append(fragment)
    assert sorted(fragments) == [0, 1]
    for index, call in enumerate(calls):
        first, *rest = fragments[index]
        assert first["id"] == (call.id or f"call_{index}")
        assert first["type"] == "function"
        assert first["function"] == {"name": call.name, "arguments": ""}
        assert len(rest) >= 2
        assert all(set(f) == {"index", "function"} for f in rest)
        assert "".join(f["function"]["arguments"] for f in rest) == call.arguments_json
    assert json.loads(calls[0].arguments_json) == {"query": "weather in Paris", "limit": 3}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("include", [True, False])
def test_usage_chunk_only_with_include_usage(
    server: LLMTestServer, client: httpx2.Client, include: bool
) -> None:
    server.push(Reply(text="one two"))
    chunks = chat(client, stream_options={"include_usage": include})
    if include:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == 2
        assert all(c["usage"] is None for c in chunks[:-1])
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    else:
        assert all("usage" not in c for c in chunks)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("style", ["groq", "finish_chunk", "always", "none"])
def test_usage_styles(server: LLMTestServer, client: httpx2.Client, style: str) -> None:
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    server.push(Reply(text="a b", usage=usage, usage_style=style))  # type: ignore[arg-type]
    chunks = chat(client)
    finish = next(c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"])
    if style == "groq":
        assert finish["x_groq"]["usage"] == usage
        assert all("usage" not in c for c in chunks)
    elif style == "finish_chunk":
        assert finish["usage"] == usage
        assert chunks[-1] is finish
    elif style == "always":
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"] == usage
    else:
        assert all("usage" not in c and "x_groq" not in c for c in chunks)


# -- Responses -------------------------------------------------------------------------------


def test_responses_non_stream(server: LLMTestServer, client: httpx2.Client) -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "total_tokens": 14,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    reply = Reply(
        text="Hi!",
        reasoning="think",
        refusal="not that",
        tool_calls=[ToolCallReply("f", {"a": 1}, id="c1")],
        usage=usage,
    )
    server.push(reply)
    body = client.post("/responses", json={"model": "m", "input": "hi"}).json()
    assert body["object"] == "response"
    assert body["id"].startswith("resp_")
    assert body["status"] == "completed"
    assert body["incomplete_details"] is None
    assert body["error"] is None
    assert body["model"] == "m"
    reasoning, message, call = body["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "think"}]
    assert message["type"] == "message"
    assert message["role"] == "assistant"
    assert message["content"] == [
        {"type": "output_text", "text": "Hi!", "annotations": []},
        {"type": "refusal", "refusal": "not that"},
    ]
    assert call["type"] == "function_call"
    assert call["id"].startswith("fc_")
    assert (call["call_id"], call["name"], call["arguments"]) == ("c1", "f", '{"a":1}')
    assert body["usage"] == {
        "input_tokens": 10,
        "output_tokens": 4,
        "total_tokens": 14,
        "input_tokens_details": {"cached_tokens": 6},
        "output_tokens_details": {"reasoning_tokens": 1},
    }


def test_responses_stream_event_sequence(server: LLMTestServer, client: httpx2.Client) -> None:
    text = "The answer is 42."
    server.push(Reply(text=text, reasoning="so hard", tool_calls=[ToolCallReply("f", {"x": 1})]))
    events = resp_events(client, model="m")
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert types.count("response.output_item.added") == 3
    assert types.count("response.output_item.done") == 3
    for name in (
        "response.reasoning_summary_text.done",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
        "response.function_call_arguments.done",
    ):
        assert types.count(name) == 1

    def by_type(kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["type"] == kind]

    reasoning = "".join(e["delta"] for e in by_type("response.reasoning_summary_text.delta"))
    assert reasoning == "so hard"
    text_deltas = by_type("response.output_text.delta")
    assert "".join(e["delta"] for e in text_deltas) == text
    assert {(e["output_index"], e["content_index"]) for e in text_deltas} == {(1, 0)}
    added_call = by_type("response.output_item.added")[2]["item"]
    assert added_call["type"] == "function_call"
    assert added_call["arguments"] == ""
    arg_deltas = by_type("response.function_call_arguments.delta")
    assert len(arg_deltas) >= 2
    assert {e["item_id"] for e in arg_deltas} == {added_call["id"]}
    assert "".join(e["delta"] for e in arg_deltas) == '{"x":1}'
    done = by_type("response.function_call_arguments.done")[0]
    assert (done["name"], done["arguments"]) == ("f", '{"x":1}')
    final = events[-1]["response"]
    assert final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == ["reasoning", "message", "function_call"]
    assert final["usage"]["output_tokens"] > 0
    assert final["id"] == events[0]["response"]["id"]


def test_responses_incomplete(server: LLMTestServer, client: httpx2.Client) -> None:
    reply = Reply(text="cut", incomplete_reason="max_output_tokens")
    server.push(reply, reply, reply)
    events = resp_events(client)
    assert events[-1]["type"] == "response.incomplete"
    final = events[-1]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    body = client.post("/responses", json={"input": "hi"}).json()
    assert body["status"] == "incomplete"
    assert chat(client)[-1]["choices"][0]["finish_reason"] == "length"


def test_responses_refusal_stream(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Reply(refusal="I cannot help"))
    events = resp_events(client)
    refusal = "".join(e["delta"] for e in events if e["type"] == "response.refusal.delta")
    assert refusal == "I cannot help"
    done = next(e for e in events if e["type"] == "response.refusal.done")
    assert done["refusal"] == "I cannot help"


# -- choosing replies ------------------------------------------------------------------------


def test_per_key_queues(server: LLMTestServer) -> None:
    server.push("shared 1", "shared 2")
    server.push(Reply(text="for a"), key="sk-a")

    def ask(key: str) -> str:
        headers = {"authorization": f"Bearer {key}"}
        body = {"messages": MESSAGES}
        r = httpx2.post(f"{server.base_url}/chat/completions", json=body, headers=headers)
        return str(r.json()["choices"][0]["message"]["content"])

    assert ask("sk-b") == "shared 1"
    assert ask("sk-a") == "for a"
    assert ask("sk-a") == "shared 2"
    assert ask("sk-a") == "echo: hi there"


def test_default_echo_and_callable_default(server: LLMTestServer, client: httpx2.Client) -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "from parts"}]}]
    r = client.post("/chat/completions", json={"messages": MESSAGES + parts})
    assert r.json()["choices"][0]["message"]["content"] == "echo: from parts"
    r = client.post("/responses", json={"input": "plain input"})
    assert r.json()["output"][0]["content"][0]["text"] == "echo: plain input"
    server.default = Reply(text="fixed")
    assert chat(client)[1]["choices"][0]["delta"]["content"] == "fixed"
    server.default = lambda req: Reply(text=f"model={req.model}")
    r = client.post("/responses", json={"model": "zz", "input": "x"})
    assert r.json()["output"][0]["content"][0]["text"] == "model=zz"
    server.clear()
    assert server.requests == []
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert r.json()["choices"][0]["message"]["content"] == "echo: hi there"


def test_handler_runs_before_queues(server: LLMTestServer, client: httpx2.Client) -> None:
    def handler(req: RecordedRequest) -> Reply | Error | None:
        if req.api == "responses":
            return Error(status=418, message="teapot")
        return None

    server.handler = handler
    server.push(Reply(text="queued"))
    assert client.post("/responses", json={"input": "x"}).status_code == 418
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert r.json()["choices"][0]["message"]["content"] == "queued"


def test_handler_exception_is_a_500(server: LLMTestServer, client: httpx2.Client) -> None:
    def handler(req: RecordedRequest) -> None:
        raise RuntimeError("bug in test")

    server.handler = handler
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 500
    assert "bug in test" in r.json()["error"]["message"]
    assert isinstance(server.errors[0], RuntimeError)


def test_recorded_requests(server: LLMTestServer, client: httpx2.Client) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    headers = {"Authorization": "Bearer sk-rec", "X-Custom": "yes"}
    with client.stream("POST", "/chat/completions?api-version=1", json=body, headers=headers) as r:
        r.read()
    client.post("/responses", json={"input": "x"})
    client.get("/models")
    first, second, third = server.wait_for_requests(3)
    assert first.method == "POST"
    assert (first.path, first.query) == ("/v1/chat/completions", "api-version=1")
    assert first.api == "chat"
    assert first.api_key == "sk-rec"
    assert first.headers["x-custom"] == "yes"
    assert first.json == body
    assert json.loads(first.body) == body
    assert first.stream is True
    assert (second.api, second.stream, second.api_key) == ("responses", False, None)
    assert (third.api, third.method, third.json) == ("other", "GET", None)


def test_models_unknown_path_bad_json_wrong_method(client: httpx2.Client) -> None:
    models = client.get("/models").json()
    assert models["object"] == "list"
    assert models["data"][0]["id"]
    r = client.get("/nowhere")
    assert r.status_code == 404
    assert "error" in r.json()
    r = client.post("/chat/completions", content=b"{not json")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert client.get("/chat/completions").status_code == 405


# -- errors and raw bytes --------------------------------------------------------------------


def test_error_json(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(
        Error(
            status=429,
            message="slow down",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": "2", "x-ratelimit-remaining-requests": "0"},
        ),
        Error(status=503),
    )
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"
    assert r.json() == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    r = client.post("/responses", json={"input": "x", "stream": True})
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "Service Unavailable"


def test_error_raw_body(server: LLMTestServer, client: httpx2.Client) -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    server.push(Error(status=502, body=html, content_type="text/html"), Error(status=500, body=b""))
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert (r.status_code, r.headers["content-type"], r.content) == (502, "text/html", html)
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert (r.status_code, r.content) == (500, b"")


def test_error_in_stream(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Error(in_stream_after=2, message="overloaded", code=502))
    raw_events = stream_events(client, "/chat/completions", {"messages": MESSAGES})
    data = [json.loads(e["data"]) for e in raw_events]
    assert "".join(deltas(data[:-1], "content")) == "a b"
    assert data[-1] == {
        "error": {"message": "overloaded", "type": None, "param": None, "code": 502}
    }

    server.push(Error(in_stream_after=1, message="boom", type="server_error"))
    events = resp_events(client)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "error"
    assert (events[-1]["code"], events[-1]["message"]) == ("server_error", "boom")

    server.push(
        Error(in_stream_after=0, message="bad", code="x", responses_event="response.failed")
    )
    events = resp_events(client)
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"] == {"code": "x", "message": "bad"}


def test_raw_bytes_exactly(server: LLMTestServer, client: httpx2.Client) -> None:
    pieces = [
        b'data: {"a":',
        b"1}\r\n\r\n",
        b": comment\r",
        b"\rdata: [DONE]\n\n",
        b"x" * 1_000_000,
    ]
    server.push(Raw(chunks=pieces, headers={"x-test": "1"}))
    with client.stream("POST", "/chat/completions", json={"messages": MESSAGES}) as r:
        assert r.headers["x-test"] == "1"
        assert r.headers["transfer-encoding"] == "chunked"
        assert b"".join(r.iter_raw()) == b"".join(pieces)
    server.push(Raw(status=200, body=b"{not json", content_type="application/json"))
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert (r.content, r.headers["content-type"]) == (b"{not json", "application/json")


def test_raw_close_truncates_body(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Raw(chunks=[b"data: {}\n\n"], close=True))
    lines: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        read_lines(client, "/chat/completions", {"messages": MESSAGES}, lines)
    assert lines == ["data: {}", ""]
    assert server.client_aborts == 0


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/responses"])
def test_reset_before_headers(server: LLMTestServer, client: httpx2.Client, path: str) -> None:
    server.push(Fault("reset_before_headers"))
    with pytest.raises(httpx2.TransportError):
        client.post(path, json={"messages": MESSAGES, "input": "x"})
    assert len(server.requests) == 1
    assert client.post(path, json={"messages": MESSAGES, "input": "x"}).status_code == 200


@pytest.mark.parametrize("path", ["/chat/completions", "/responses"])
def test_cut_stream(server: LLMTestServer, client: httpx2.Client, path: str) -> None:
    server.push(Fault("cut_stream", after=3))
    lines: list[str] = []
    body = {"messages": MESSAGES, "input": "x", "stream": True}
    with pytest.raises(httpx2.RemoteProtocolError):
        read_lines(client, path, body, lines)
    data = [json.loads(e["data"]) for e in parse_sse(lines)]
    if path == "/responses":
        text = "".join(d["delta"] for d in data if d["type"] == "response.output_text.delta")
    else:
        text = "".join(deltas(data, "content"))
    assert text == "a b c"


@pytest.mark.parametrize("stream", [True, False])
def test_stall_released(server: LLMTestServer, client: httpx2.Client, stream: bool) -> None:
    server.push(Fault("stall_after_headers", seconds=30))
    body = {"messages": MESSAGES, "stream": stream}
    started = time.monotonic()
    with client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        server.release_stalls()
        content = r.read()
    assert time.monotonic() - started < 5
    if stream:
        chunks = chat_chunks(parse_sse(content.decode().splitlines()))
        assert "".join(deltas(chunks, "content")) == "a b c"
    else:
        assert json.loads(content)["choices"][0]["message"]["content"] == "a b c"


def test_stall_ends_when_client_disconnects(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Fault("stall_after_headers"))
    with client.stream("POST", "/responses", json={"input": "x", "stream": True}) as r:
        assert r.status_code == 200
    server.wait_for_client_aborts(1)
    assert server.client_aborts == 1


@pytest.mark.parametrize("path", ["/chat/completions", "/responses"])
def test_never_ending_until_client_disconnects(
    server: LLMTestServer, client: httpx2.Client, path: str
) -> None:
    server.push(Fault("never_ending"))
    body = {"messages": MESSAGES, "input": "x", "stream": True}
    with client.stream("POST", path, json=body) as r:
        lines = r.iter_lines()
        events = 0
        comments = 0
        for line in lines:
            events += line.startswith("data:")
            comments += line.startswith(":")
            if events > 12 and comments:
                break
    server.wait_for_client_aborts(1)
    assert client.post(path, json={"messages": MESSAGES, "input": "x"}).status_code == 200


def test_never_ending_finishes_after_seconds(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Fault("never_ending", seconds=0.05))
    chunks = chat(client)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    server.push(Fault("never_ending", seconds=0.05))
    events = resp_events(client)
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == text


def test_stop_ends_stalls_and_closes_connections(server: LLMTestServer) -> None:
    server.push(Fault("stall_after_headers"))
    with httpx2.Client(base_url=server.base_url, timeout=5.0) as c:
        idle = socket.create_connection(("127.0.0.1", server.port))
        try:
            body = {"messages": MESSAGES, "stream": True}
            with c.stream("POST", "/chat/completions", json=body) as r:
                assert r.status_code == 200
                assert server.open_connections == 2
                started = time.monotonic()
                server.stop()
                assert time.monotonic() - started < 3
                with pytest.raises(httpx2.TransportError):
                    r.read()
            assert server.open_connections == 0
            idle.settimeout(5)
            assert idle.recv(1) == b""
        finally:
            idle.close()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(server.base_url + "/models")


def test_reply_delay(server: LLMTestServer, client: httpx2.Client) -> None:
    server.push(Reply(text="late", delay=0.05))
    started = time.monotonic()
    r = client.post("/chat/completions", json={"messages": MESSAGES})
    assert time.monotonic() - started >= 0.045
    assert r.json()["choices"][0]["message"]["content"] == "late"


# -- waiting and lifecycle -------------------------------------------------------------------


def test_wait_for_requests_timeout(server: LLMTestServer) -> None:
    with pytest.raises(TimeoutError):
        server.wait_for_requests(1, timeout=0.05)


def test_wait_for_disconnects(server: LLMTestServer) -> None:
    with httpx2.Client(base_url=server.base_url) as c:
        c.get("/models")
        c.get("/models")
        assert server.open_connections == 1  # keep-alive reused the connection
    server.wait_for_disconnects()
    assert server.open_connections == 0


def test_keep_alive_chunked_request_body(server: LLMTestServer) -> None:
    server.push("one", "two")
    payload = json.dumps({"messages": MESSAGES}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%b\r\n0\r\n\r\n" % (len(payload), payload)
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(request + request)  # pipelined
        sock.settimeout(5)
        received = b""
        while received.count(b"chat.completion") < 2:
            received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"content":"one"' in received
    assert b'"content":"two"' in received
    assert server.requests[0].json == {"messages": MESSAGES}


def test_reply_validation() -> None:
    with pytest.raises(ValueError, match="join"):
        Reply(text="b", chunks=["a"])
    with pytest.raises(ValueError, match="fault"):
        Fault("explode")  # type: ignore[arg-type]
    assert Reply(chunks=["x", "y"]).text == "xy"


async def test_async_usage() -> None:
    async with LLMTestServer() as server:
        server.push(Fault("never_ending"))
        async with httpx2.AsyncClient(base_url=server.base_url, timeout=5.0) as c:
            body = {"messages": MESSAGES, "stream": True}
            async with c.stream("POST", "/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        break
            await server.client_aborts_reached(1)
            r2 = await c.post("/responses", json={"input": "async"})
            assert r2.json()["output"][0]["content"][0]["text"] == "echo: async"
            requests = await server.requests_arrived(2)
            assert [q.api for q in requests] == ["chat", "responses"]
            with pytest.raises(TimeoutError):
                await server.requests_arrived(3, timeout=0.05)
        await server.connections_closed()


def test_cli_prints_base_url_and_serves() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmplug.testing", "--port", "0", "--text", "from cli"],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(CORE), "PATH": ""},
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v1")
        r = httpx2.post(f"{base_url}/chat/completions", json={"messages": MESSAGES})
        assert r.json()["choices"][0]["message"]["content"] == "from cli"
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        if proc.stdout is not None:
            proc.stdout.close()
