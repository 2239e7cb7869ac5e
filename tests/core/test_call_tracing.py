"""Options of a call that are not provider parameters: trace_id (on every log event of the
call) and SimpleLLMFunc's stream= and decorator defaults, never sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import pytest
import structlog

from llmplug import (
    ConfigError,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import Error, LLMTestServer, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """llmplug's log events as dicts; structlog left unconfigured after, as the app had it."""
    try:
        with structlog.testing.capture_logs() as logs:
            yield logs
    finally:
        structlog.reset_defaults()


async def test_trace_id_is_on_every_log_event_of_the_call(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()
    server.push(Error(status=500), Reply(text="ok"))
    with captured_logs() as logs:
        await llm.chat("hi", trace_id="req-42")
    assert [(e["event"], e["trace_id"]) for e in logs] == [
        ("llm.attempt_failed", "req-42"),
        ("llm.attempt", "req-42"),
    ]
    assert "trace_id" not in server.requests[0].json


async def test_a_decorated_call_has_one_trace_id_for_all_its_requests(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @tool
    def lookup(term: str) -> str:
        """Look a term up."""
        return "found"

    @llm_function(llm_interface=make_llm(), toolkit=[lookup])
    async def research(topic: str) -> str:
        """Research the topic."""

    script: list[Reply | str] = [
        Reply(tool_calls=[ToolCallReply(name="lookup", arguments={"term": "x"})]),
        "done",
    ]
    with captured_logs() as logs:
        server.push(*script)
        await research("x")
        server.push(*script)
        await research("y")
    ids = [e["trace_id"] for e in logs]
    assert len(ids) == 4
    assert ids[0] == ids[1] != ids[2] == ids[3]
    assert ids[0].startswith("research_")
    # Given at call time, it is used as it is.
    with captured_logs() as logs:
        server.push(*script)
        await research("z", _llm_params={"trace_id": "nightly-run"})  # type: ignore[call-arg]
    assert {e["trace_id"] for e in logs} == {"nightly-run"}


async def test_a_stream_keyword_contradicting_the_method_is_refused(make_llm: MakeLLM) -> None:
    llm = make_llm()
    with pytest.raises(ConfigError, match="chat_stream"):
        await llm.chat("hi", stream=True)
    with pytest.raises(ConfigError, match="chat_stream"):
        [_ async for _ in llm.chat_stream("hi", stream=False)]


@pytest.mark.parametrize("wire", WIRES)
async def test_simplellmfunc_defaults_are_accepted_and_never_sent(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    llm = make_llm(interface=wire)

    @llm_chat(
        llm_interface=llm,
        return_mode="text",
        enable_event=False,
        strict_signature=False,
        self_reference=None,
        self_reference_key=None,
        temperature=0.3,
    )
    async def agent(message: str) -> None:
        """Be brief."""

    @llm_function(llm_interface=llm, enable_event=False, trace_id="job-7", temperature=0.1)
    async def summarize(text: str) -> str:
        """Summarize."""

    [_ async for _ in agent("hi")]
    await summarize("a long text")
    await llm.chat(messages=[{"role": "user", "content": "hi"}], stream=False, trace_id="t-1")
    [_ async for _ in llm.chat_stream("hi", stream=True, trace_id="t-2")]
    simplellmfunc_only = {
        "return_mode",
        "enable_event",
        "strict_signature",
        "self_reference",
        "self_reference_key",
        "trace_id",
    }
    for req in server.requests:
        assert not simplellmfunc_only & set(req.json)
    assert [r.json.get("temperature") for r in server.requests] == [0.3, 0.1, None, None]
