"""The observer hooks: every attempt and every call is told, with what a dashboard needs."""

from __future__ import annotations

import pytest

import llmplug
from llmplug import AttemptInfo, CallInfo, Registry, StreamError, hookimpl
from llmplug.testing import Error, Fault, LLMTestServer, Reply
from tests.conftest import MakeLLM


class Recorder:
    def __init__(self) -> None:
        self.attempts: list[AttemptInfo] = []
        self.calls: list[CallInfo] = []

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
