"""The observer hooks: every attempt and every call is told, with what a dashboard needs."""

from __future__ import annotations

import contextlib
import json

import pytest

import llmplug
from llmplug import (
    AttemptInfo,
    CallInfo,
    Registry,
    StreamError,
    ToolInfo,
    hookimpl,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import Error, Fault, LLMTestServer, Raw, Reply, ToolCallReply
from tests.conftest import MakeLLM


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[AttemptInfo] = []
        self.calls: list[CallInfo] = []
        self.tools: list[ToolInfo] = []

    @hookimpl
    def observe_tool(self, info: ToolInfo) -> None:
        self.tools.append(info)

    @hookimpl
    def observe_attempt(self, info: AttemptInfo) -> None:
        self.attempts.append(info)

    @hookimpl
    def observe_call(self, info: CallInfo) -> None:
        self.calls.append(info)


class Broken:
    @hookimpl
    def observe_attempt(self, info: AttemptInfo) -> None:
        raise RuntimeError("the exporter is down")


def registry_with(*plugins: object) -> Registry:
    return Registry(entry_points=False, plugins=[*plugins, *llmplug.default_plugins()])


async def test_a_retried_call_reports_each_attempt_and_the_call(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    server.push(Error(status=503, message="down"), Reply(text="ok"))
    llm = make_llm(keys=("sk-observed-1",), registry=registry_with(rec))
    assert (await llm.chat("hi")).text == "ok"

    first, second = rec.attempts
    assert (first.status, first.http_status, first.error_type) == (
        "error",
        503,
        "InternalServerError",
    )
    assert first.retry_reason is None and first.attempt == 0
    assert second.status == "ok" and second.attempt == 1
    assert second.retry_reason == "503 InternalServerError"
    assert second.key == llmplug.fingerprint("sk-observed-1")
    assert second.usage is not None and second.usage.output_tokens > 0
    assert second.provider == "test" and second.model == "test-model"
    assert all("sk-observed-1" not in repr(a) for a in rec.attempts)

    (call,) = rec.calls
    assert (call.status, call.attempts, call.stream) == ("ok", 2, False)
    assert call.usage == second.usage and call.duration_s >= second.duration_s


async def test_a_stream_broken_after_output_is_one_failed_call(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    server.push(Fault("cut_stream", after=5), Reply(text="never"))
    llm = make_llm(registry=registry_with(rec))
    with pytest.raises(StreamError):
        async for _ in llm.chat_stream("hi"):
            pass
    (attempt,) = rec.attempts
    assert attempt.status == "error" and attempt.stream
    (call,) = rec.calls
    assert (call.status, call.error_type, call.attempts) == ("error", "StreamError", 1)


async def test_a_stream_reports_its_usage_once_done(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    server.push(Reply(text="streamed"))
    llm = make_llm(registry=registry_with(rec))
    events = [e async for e in llm.chat_stream("hi")]
    assert isinstance(events[-1], llmplug.Done)
    (call,) = rec.calls
    assert call.status == "ok" and call.stream and call.usage is not None


async def test_a_stream_left_before_done_is_interrupted_and_after_done_is_ok(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    server.push(Reply(text="a b c d"), Reply(text="a b"))
    async with contextlib.aclosing(llm.chat_stream("hi")) as events:
        async for _ in events:
            break
    async with contextlib.aclosing(llm.chat_stream("hi")) as events:
        async for event in events:
            if isinstance(event, llmplug.Done):
                break
    left, finished = rec.calls
    assert (left.status, left.error_type, left.usage) == ("interrupted", "GeneratorExit", None)
    assert left.first_chunk_s is not None and left.last_chunk_s is None
    assert (finished.status, finished.error_type) == ("ok", None)
    assert finished.usage is not None and finished.last_chunk_s is not None
    assert [a.status for a in rec.attempts] == ["interrupted", "ok"]


async def test_a_stream_answered_with_a_whole_body_is_observed_as_a_stream(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    body = {
        "id": "c1",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "whole"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    server.push(Raw(body=json.dumps(body), content_type="application/json"))
    events = [e async for e in llm.chat_stream("hi")]
    assert isinstance(events[-1], llmplug.Done) and events[-1].completion.text == "whole"
    (call,) = rec.calls
    assert (call.status, call.stream, call.usage and call.usage.total_tokens) == ("ok", True, 4)
    assert call.first_chunk_s is not None and call.first_chunk_s <= (call.last_chunk_s or 0)


async def test_a_stream_answered_with_a_body_that_fails_handed_no_first_event(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec), max_retries=0)
    body = {"error": {"message": "the model is overloaded", "type": "server_error"}}
    server.push(Raw(body=json.dumps(body), content_type="application/json"))
    with pytest.raises(llmplug.LLMError):
        async for _ in llm.chat_stream("hi"):
            pass
    (call,) = rec.calls
    assert (call.status, call.first_chunk_s, call.last_chunk_s) == ("error", None, None)


async def test_an_observer_that_raises_does_not_fail_the_call(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    server.push(Reply(text="fine"))
    llm = make_llm(registry=registry_with(Broken(), rec))
    assert (await llm.chat("hi")).text == "fine"
    assert len(rec.attempts) == 1 and len(rec.calls) == 1


def test_the_registry_knows_whether_anyone_observes() -> None:
    registry = registry_with()
    assert not registry.observed
    name = registry.register(Recorder())
    assert registry.observed
    registry.unregister(name)
    assert not registry.observed


async def test_an_observer_registered_straight_on_the_plugin_manager_is_called(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    """However a plugin arrives (here pluggy's own register and unregister, as a framework
    that loads plugins itself does), the registry knows whether anyone observes."""
    registry = registry_with()
    llm = make_llm(registry=registry)
    assert (await llm.chat("before")).text == "echo: before"
    rec = Recorder()
    registry.pm.register(rec, name="straight")
    assert registry.observed
    assert (await llm.chat("during")).text == "echo: during"
    assert [(a.status, a.attempt) for a in rec.attempts] == [("ok", 0)]
    assert [c.status for c in rec.calls] == ["ok"]
    registry.pm.unregister(name="straight")
    assert not registry.observed
    await llm.chat("after")
    assert len(rec.attempts) == 1 and len(rec.calls) == 1


async def test_every_call_has_its_own_id_shared_by_its_attempts(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # id(call) was reused as soon as a call was freed: two calls in a row shared one.
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    server.push(Error(status=503), Reply(text="one"))
    for _ in range(5):
        await llm.chat("hi")
    ids = [c.call_id for c in rec.calls]
    assert len(set(ids)) == 5 and all(isinstance(i, str) for i in ids)
    assert {a.call_id for a in rec.attempts} == set(ids)
    assert [a.call_id for a in rec.attempts[:2]] == [ids[0], ids[0]]


async def test_the_call_record_carries_the_request_and_the_answer(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    server.push(Reply(text="fine", finish_reason="length"))
    answer = await llm.chat("hi", temperature=0.3, session_id="conv-7")
    (call,) = rec.calls
    assert call.call is not None and call.call.params["temperature"] == 0.3
    assert call.call.session_id == "conv-7" and call.call.base_url == server.base_url
    assert call.completion == answer and answer.response_id is not None
    assert call.completion.finish_reason == "length"
    assert call.first_chunk_s is None  # not a stream


async def test_a_stream_record_says_when_its_first_and_last_events_came(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    server.push(Reply(text="a b c d", chunk_delay=0.01))
    [e async for e in llm.chat_stream("hi")]
    (call,) = rec.calls
    assert call.first_chunk_s is not None and call.last_chunk_s is not None
    assert 0 < call.first_chunk_s < call.last_chunk_s <= call.duration_s
    # Four pieces 10 ms apart: the last came at least 30 ms after the first.
    assert call.last_chunk_s - call.first_chunk_s >= 0.03


@tool
def add(a: int, b: int) -> int:
    return a + b


@tool
def explode() -> str:
    raise ValueError("the sensor is offline")


@pytest.mark.parametrize("decorator", ["llm_chat", "llm_function"])
async def test_every_tool_run_is_told_its_failures_included(
    server: LLMTestServer, make_llm: MakeLLM, decorator: str
) -> None:
    rec = Recorder()
    llm = make_llm(registry=registry_with(rec))
    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="add", arguments={"a": 2, "b": 3}, id="t-ok"),
                ToolCallReply(name="explode", arguments={}, id="t-raise"),
                ToolCallReply(name="nope", arguments={}, id="t-unknown"),
                ToolCallReply(name="add", arguments={"a": "x"}, id="t-bad-args"),
            ]
        ),
        Reply(text="done"),
    )
    if decorator == "llm_chat":

        @llm_chat(llm_interface=llm, toolkit=[add, explode], session_id="s-1")
        async def agent(message: str) -> None:
            """Use tools."""

        async for _ in agent("go"):
            pass
    else:

        @llm_function(llm_interface=llm, toolkit=[add, explode], session_id="s-1")
        async def fn(task: str) -> str:
            """Use tools."""
            return ""

        assert await fn("go") == "done"
    by_id = {t.call.id: t for t in rec.tools}
    assert set(by_id) == {"t-ok", "t-raise", "t-unknown", "t-bad-args"}
    ok = by_id["t-ok"]
    assert (ok.status, ok.result, ok.error_type, ok.call.name) == ("ok", "5", None, "add")
    assert ok.duration_s >= 0 and ok.session_id == "s-1" and ok.trace_id
    assert (by_id["t-raise"].status, by_id["t-raise"].error_type) == ("error", "ValueError")
    assert "the sensor is offline" in (by_id["t-raise"].result or "")
    assert (by_id["t-unknown"].status, by_id["t-unknown"].error_type) == ("error", "UnknownTool")
    assert by_id["t-bad-args"].status == "error"
    assert by_id["t-bad-args"].error_type == "ValidationError"
    # The tools' records carry the decorated call's trace id, as its calls' records do.
    assert {t.trace_id for t in rec.tools} == {c.trace_id for c in rec.calls}


async def test_without_observers_no_record_and_no_id_is_made(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(registry=registry_with())
    call = llm._call([{"role": "user", "content": "hi"}], None, {}, False)
    await llm.pipeline.complete(call)
    assert call.call_id is None and call.started is None


@pytest.mark.parametrize("stream", [False, True])
async def test_each_attempt_names_its_call_its_error_kind_and_its_first_token(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    rec = Recorder()
    server.push(Error(status=429, message="slow down"), Reply(text="a b c", chunk_delay=0.01))
    llm = make_llm(keys=("sk-o1", "sk-o2"), registry=registry_with(rec))
    if stream:
        [e async for e in llm.chat_stream("hi")]
    else:
        await llm.chat("hi")
    first, second = rec.attempts
    (call,) = rec.calls
    assert first.call_id == second.call_id == call.call_id
    assert (first.error_kind, second.error_kind) == ("rate_limit", None)
    assert first.time_to_first_token_s is None
    if stream:
        ttft = second.time_to_first_token_s
        assert ttft is not None and 0 <= ttft <= second.duration_s
    else:
        assert second.time_to_first_token_s is None
