"""A wire classifies its provider's error responses (``classify_error``), and the core acts on
the classification alone: a 400 that means "bad key" takes the key out of rotation, a retry
delay in the body rests the key for as long as asked, typed output refused in the provider's
own words falls back to the prompt. The wire here is an outsider's, written from
docs/plugins.md: Gemini's error bodies on the tests' Ollama-style wire."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel

from llmplug import (
    AuthenticationError,
    ErrorInfo,
    LLMInterface,
    ModelGroup,
    PluginError,
    RateLimitError,
    Registry,
    async_llm_function,
)
from llmplug.testing import LLMTestServer, Raw, RecordedRequest
from llmplug.wire import classify_openai, kind_by_status

from ._wires import OllamaParser, Variant

GEMINI_ERRORS = "gemini-errors"


class _Detail(msgspec.Struct):
    type: str | None = msgspec.field(name="@type", default=None)
    reason: str | None = None
    retryDelay: str | None = None


class _Status(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[_Detail] = []


class _Body(msgspec.Struct):
    error: _Status | None = None


_body = msgspec.json.Decoder(_Body)


class GeminiErrorsParser(OllamaParser):
    """Reads Gemini's ``google.rpc.Status`` error bodies, as a Gemini wire would."""

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        try:
            err = _body.decode(body).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            err = None
        if err is None:
            return classify_openai(status, headers, body)
        reasons = {d.reason for d in err.details}
        delays = [d.retryDelay for d in err.details if d.retryDelay]
        kind = kind_by_status(status, headers)
        if "API_KEY_INVALID" in reasons:
            kind = "auth"
        elif "responseJsonSchema" in err.message:
            kind = "schema_unsupported"
        return ErrorInfo(
            kind=kind,
            message=err.message,
            code=err.status,
            retry_after=float(delays[0].rstrip("s")) if delays else None,
        )


def gemini_error(status: int, code: str, message: str, *details: dict[str, Any]) -> Raw:
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return Raw(status=status, body=msgspec.json.encode(body), content_type="application/json")


def ollama_answer(text: str) -> Raw:
    body = {"message": {"content": text}, "done": True, "prompt_eval_count": 3, "eval_count": 1}
    return Raw(body=msgspec.json.encode(body), content_type="application/json")


BAD_KEY = gemini_error(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
)
DAILY_QUOTA = gemini_error(
    429,
    "RESOURCE_EXHAUSTED",
    "You exceeded your current quota, please check your plan and billing details.",
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "35643s"},
)


@pytest.fixture
def gemini_errors(registry_with: Callable[[object], Any]) -> Any:
    return registry_with(Variant(GEMINI_ERRORS, GeminiErrorsParser))


@pytest.fixture
def registry_with() -> Callable[[object], Registry]:
    def make(plugin: object) -> Registry:
        registry = Registry()
        registry.register(plugin)
        return registry

    return make


def by_key(bad: Raw, good: Callable[[], Raw]) -> Callable[[RecordedRequest], Raw]:
    return lambda rec: bad if rec.api_key == "bad" else good()


async def test_a_key_the_wire_calls_bad_leaves_rotation_and_every_call_succeeds(
    server: LLMTestServer, make_llm: Any, gemini_errors: Any
) -> None:
    server.handler = by_key(BAD_KEY, lambda: ollama_answer("ok"))
    llm = make_llm(keys=("bad", "good"), wire=GEMINI_ERRORS, registry=gemini_errors)
    answers = [(await llm.chat("hi")).text for _ in range(10)]
    assert answers == ["ok"] * 10
    status = {k["key"]: k for k in llm.key_pool.status()}
    bad, good = (status[llm.key_pool.fingerprints[i]] for i in (0, 1))
    assert bad["state"] == "disabled" and "API key not valid" in bad["cooldown_reason"]
    assert good["state"] == "ok"
    assert sum(1 for r in server.requests if r.api_key == "bad") == 1


async def test_a_refused_key_is_an_authentication_error_with_the_providers_code(
    server: LLMTestServer, make_llm: Any, gemini_errors: Any
) -> None:
    server.push(BAD_KEY)
    llm = make_llm(keys=("bad",), wire=GEMINI_ERRORS, registry=gemini_errors)
    with pytest.raises(AuthenticationError) as caught:
        await llm.chat("hi")
    err = caught.value
    assert (err.status, err.kind, err.code) == (400, "auth", "INVALID_ARGUMENT")
    assert len(server.requests) == 1


async def test_a_retry_delay_in_the_body_rests_the_key_as_long_as_asked(
    server: LLMTestServer, make_llm: Any, gemini_errors: Any
) -> None:
    server.push(DAILY_QUOTA)
    llm = make_llm(keys=("k1",), wire=GEMINI_ERRORS, registry=gemini_errors)
    with pytest.raises(RateLimitError) as caught:
        await llm.chat("hi")
    assert caught.value.retry_after == 35643.0
    assert caught.value.code == "RESOURCE_EXHAUSTED"
    assert len(server.requests) == 1  # not retried: the key rests for ten hours
    [key] = llm.key_pool.status()
    assert key["state"] == "cooling" and key["cooldown_seconds"] > 35000


async def test_a_retry_delay_in_the_body_moves_the_call_to_another_key(
    server: LLMTestServer, make_llm: Any, gemini_errors: Any
) -> None:
    server.handler = lambda rec: DAILY_QUOTA if rec.api_key == "k1" else ollama_answer("ok")
    llm = make_llm(keys=("k1", "k2"), wire=GEMINI_ERRORS, registry=gemini_errors)
    assert [(await llm.chat("hi")).text for _ in range(4)] == ["ok"] * 4
    assert sum(1 for r in server.requests if r.api_key == "k1") == 1


class Answer(BaseModel):
    city: str


async def test_typed_output_refused_in_the_providers_words_falls_back_to_the_prompt(
    server: LLMTestServer, make_llm: Any, gemini_errors: Any
) -> None:
    server.push(
        gemini_error(400, "INVALID_ARGUMENT", "Unknown name 'responseJsonSchema'"),
        ollama_answer('{"city": "Paris"}'),
    )
    llm = make_llm(wire=GEMINI_ERRORS, registry=gemini_errors)

    # The test wire sends no response_format; the params still carry it, which is what the
    # fallback looks at.
    @async_llm_function(llm)
    async def capital(country: str) -> Answer:
        """The capital of {country}."""

    assert await capital("France") == Answer(city="Paris")
    assert llm.json_schema_unsupported


class BrokenClassifier(OllamaParser):
    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Any:
        return "auth"


async def test_a_classifier_answering_something_else_is_a_plugin_error(
    server: LLMTestServer, make_llm: Any, registry_with: Any
) -> None:
    server.push(BAD_KEY)
    registry = registry_with(Variant("broken-classifier", BrokenClassifier))
    llm = make_llm(wire="broken-classifier", registry=registry)
    with pytest.raises(PluginError, match="classify_error returned 'auth'"):
        await llm.chat("hi")


@pytest.mark.parametrize(
    ("message", "etype", "kind"),
    [
        ("prompt is too long: 210000 tokens > 200000 maximum", "invalid_request_error", None),
        ("Your credit balance is too low to access the API.", "invalid_request_error", "quota"),
    ],
)
async def test_anthropic_errors_are_classified_by_its_plugin(
    server: LLMTestServer, make_llm: Any, message: str, etype: str, kind: str | None
) -> None:
    body = {"type": "error", "error": {"type": etype, "message": message}}
    server.push(Raw(status=400, body=msgspec.json.encode(body), content_type="application/json"))
    small = make_llm(
        interface=LLMInterface, wire="anthropic-messages", model_name="small", context_window=8192
    )
    if kind is None:
        # A group moves a prompt that does not fit to the member with the larger context.
        big = make_llm(
            interface=LLMInterface,
            wire="anthropic-messages",
            model_name="big",
            context_window=200_000,
        )
        group = ModelGroup([small], context_window_fallbacks=[big], fallbacks=[])
        assert (await group.chat("hi")).text
        assert [r.json["model"] for r in server.requests] == ["small", "big"]
        await group.aclose()
    else:
        with pytest.raises(RateLimitError) as caught:
            await small.chat("hi")
        assert caught.value.kind == "quota"
        assert small.key_pool.status()[0]["state"] == "disabled"
