"""The conformance kit (``llmplug.testing.conformance``) over every wire llmplug ships: chat,
responses, anthropic and gemini, each on the test server speaking its shapes."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from llmplug_gemini import GeminiCompatible

from llmplug import LLMInterface, OpenAICompatible, OpenAIResponsesCompatible
from llmplug.testing import Error, LLMTestServer
from llmplug.testing.conformance import MakeLLM, WireConformance


def maker(make_llm: Any, **fixed: Any) -> MakeLLM:
    def make(keys: tuple[str, ...] = ("sk-1", "sk-2"), **kw: Any) -> Any:
        return make_llm(keys=keys, **{**fixed, **kw})

    return make


class TestChat(WireConformance):
    @pytest.fixture
    def make_wire_llm(self, server: LLMTestServer, make_llm: Any) -> MakeLLM:
        return maker(make_llm, interface=OpenAICompatible)


class TestResponses(WireConformance):
    @pytest.fixture
    def make_wire_llm(self, server: LLMTestServer, make_llm: Any) -> MakeLLM:
        return maker(make_llm, interface=OpenAIResponsesCompatible)


class TestAnthropic(WireConformance):
    context_length_error = Error(
        status=400, message="prompt is too long: 210000 tokens > 200000 maximum"
    )

    @pytest.fixture
    def make_wire_llm(self, server: LLMTestServer, make_llm: Any) -> MakeLLM:
        return maker(make_llm, interface=LLMInterface, wire="anthropic-messages")


def _status(status: int, code: str, message: str, *details: dict[str, Any]) -> Error:
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return Error(status=status, body=msgspec.json.encode(body))


class TestGemini(WireConformance):
    context_length_error = _status(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    )
    bad_key_error = _status(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
    )

    @pytest.fixture
    def make_wire_llm(self, server: LLMTestServer, make_llm: Any) -> MakeLLM:
        return maker(make_llm, interface=GeminiCompatible)
