"""Options of a call that are not provider parameters: trace_id (on every log event of the
call) and SimpleLLMFunc's stream=, never sent."""

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
)
from llmplug.testing import Error, LLMTestServer, Reply

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


async def test_a_stream_keyword_contradicting_the_method_is_refused(make_llm: MakeLLM) -> None:
    llm = make_llm()
    with pytest.raises(ConfigError, match="chat_stream"):
        await llm.chat("hi", stream=True)
    with pytest.raises(ConfigError, match="chat_stream"):
        [_ async for _ in llm.chat_stream("hi", stream=False)]
