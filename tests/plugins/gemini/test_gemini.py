"""The gemini wire end to end on the test server, which speaks Gemini's paths, key header,
bodies, SSE chunks and error bodies, and refuses a malformed request with a 400."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from pydantic import BaseModel

from llmplug import (
    AuthenticationError,
    Done,
    ImagePart,
    ImageURL,
    Message,
    RateLimitError,
    ReasoningDelta,
    ResponseError,
    StreamError,
    TextDelta,
    TextPart,
    async_llm_function,
)
from llmplug.testing import (
    Error,
    LLMTestServer,
    Raw,
    Reply,
    ToolCallReply,
    gemini_signature,
)

from .conftest import MakeGemini


async def test_a_call_and_a_stream_give_the_same_answer(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    llm = gemini(keys=("AIza-test",))
    reply = Reply(text="Hello there, friend", reasoning="think first")
    server.push(reply, reply)
    whole = await llm.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=50,
        temperature=0.2,
        reasoning_effort="low",
    )
    events = [e async for e in llm.chat_stream("hi")]
    done = events[-1]
    assert isinstance(done, Done)
    streamed = done.completion
    assert whole.text == streamed.text == "Hello there, friend"
    assert whole.reasoning == streamed.reasoning == "think first"
    assert whole.finish_reason == streamed.finish_reason == "stop"
    # The stream's usage came in a chunk after the finish reason: read all the same.
    assert whole.usage is not None and streamed.usage is not None
    assert whole.usage.reasoning_tokens == streamed.usage.reasoning_tokens == 2
    assert whole.usage.output_tokens == streamed.usage.output_tokens == 3 + 2  # with thoughts
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == whole.text
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "think first"
    first, second = server.requests
    assert first.path == "/v1/models/test-model:generateContent"
    assert (
        second.path == "/v1/models/test-model:streamGenerateContent" and second.query == "alt=sse"
    )
    assert first.headers["x-goog-api-key"] == "AIza-test" and "authorization" not in first.headers
    body = first.json
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.2,
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    assert isinstance(whole.raw, bytes) and json.loads(whole.raw)["candidates"]
    assert streamed.raw is None


async def test_the_key_can_go_in_the_query(server: LLMTestServer, gemini: MakeGemini) -> None:
    llm = gemini(keys=("AIza-q",), api_params={"gemini_key_in": "query"})
    await llm.chat("hi")
    (rec,) = server.requests
    assert rec.query == "key=AIza-q" and "x-goog-api-key" not in rec.headers
    assert "gemini_key_in" not in rec.body.decode()


async def test_a_parallel_tool_round_trip_keeps_the_thought_signature(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="weather", arguments={"city": "Paris"}),
                ToolCallReply(name="time", arguments={"city": "Paris"}),
            ]
        ),
        Reply(text="Sunny, noon"),
    )
    llm = gemini()
    first = await llm.chat("weather and time in Paris?")
    assert [c.name for c in first.tool_calls] == ["weather", "time"]
    assert first.finish_reason == "tool_calls"
    history = [Message(role="user", content="weather and time in Paris?"), first.to_message()]
    history += [
        Message(role="tool", tool_call_id=c.id, content=f"{c.name}: ok") for c in first.tool_calls
    ]
    saved = json.loads(msgspec.json.encode(history))  # the history survives JSON
    assert (await llm.chat(saved)).text == "Sunny, noon"
    contents = server.requests[1].json["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    weather, time = contents[1]["parts"]
    assert weather == {
        "functionCall": {"name": "weather", "args": {"city": "Paris"}},
        "thoughtSignature": gemini_signature("weather"),
    }
    assert time == {"functionCall": {"name": "time", "args": {"city": "Paris"}}}
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"result": "weather: ok"}}},
        {"functionResponse": {"name": "time", "response": {"result": "time: ok"}}},
    ]


class City(BaseModel):
    name: str
    country: str


async def test_typed_output_asks_for_a_json_schema(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    server.push(Reply(text='{"name": "Paris", "country": "France"}'))
    llm = gemini()

    @async_llm_function(llm)
    async def capital(country: str) -> City:
        """The capital of {country}."""

    assert await capital("France") == City(name="Paris", country="France")
    config = server.requests[0].json["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["properties"].keys() == {"name", "country"}


async def test_images_go_inline_or_as_files(server: LLMTestServer, gemini: MakeGemini) -> None:
    llm = gemini()
    content: list[TextPart | ImagePart] = [
        TextPart("what is this?"),
        ImagePart(ImageURL("data:image/png;base64,iVBORw0KGgo=")),
        ImagePart(ImageURL("https://example.com/cat.jpg")),
    ]
    await llm.chat([Message(role="user", content=content)])
    parts = server.requests[0].json["contents"][0]["parts"]
    assert parts == [
        {"text": "what is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}},
    ]


def status_body(status: int, code: str, message: str, *details: dict[str, Any]) -> Error:
    body = {"error": {"code": status, "message": message, "status": code, "details": details}}
    return Error(status=status, body=msgspec.json.encode(body))


async def test_a_revoked_key_leaves_rotation(server: LLMTestServer, gemini: MakeGemini) -> None:
    bad = status_body(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
    )
    server.handler = lambda rec: bad if rec.api_key == "AIza-revoked" else None
    llm = gemini(keys=("AIza-revoked", "AIza-good"))
    for _ in range(6):
        assert (await llm.chat("hi")).text == "echo: hi"
    states = [k["state"] for k in llm.key_pool.status()]
    assert states == ["disabled", "ok"]
    assert sum(r.api_key == "AIza-revoked" for r in server.requests) == 1
    server.handler = None
    server.push(bad)
    with pytest.raises(AuthenticationError) as caught:
        await gemini(keys=("AIza-other",)).chat("hi")
    assert caught.value.code == "INVALID_ARGUMENT" and caught.value.kind == "auth"


async def test_a_retry_delay_in_the_body_is_honoured(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    server.push(
        status_body(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota.",
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "35643s"},
        )
    )
    llm = gemini()
    with pytest.raises(RateLimitError) as caught:
        await llm.chat("hi")
    assert (caught.value.retry_after, caught.value.code) == (35643.0, "RESOURCE_EXHAUSTED")
    assert len(server.requests) == 1
    assert llm.key_pool.status()[0]["cooldown_seconds"] > 35000


async def test_a_blocked_prompt_is_a_documented_error(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
    server.push(Raw(body=json.dumps(blocked), content_type="application/json"))
    with pytest.raises(ResponseError, match=r"blocked \(SAFETY\)") as caught:
        await gemini().chat("something bad")
    assert (caught.value.code, caught.value.type, caught.value.kind) == (
        "SAFETY",
        "prompt_blocked",
        "bad_request",
    )
    assert len(server.requests) == 1


async def test_an_error_in_the_stream_is_a_stream_error(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    llm = gemini()
    # Before any output: retried, as the status it carries says.
    server.push(Error(status=503, message="overloaded", in_stream_after=0), Reply(text="ok"))
    events = [e async for e in llm.chat_stream("hi")]
    assert isinstance(events[-1], Done) and events[-1].completion.text == "ok"
    # After output reached the caller: raised, with what had arrived.
    server.push(Error(status=503, message="overloaded", in_stream_after=2))
    with pytest.raises(StreamError, match="overloaded") as caught:
        [e async for e in llm.chat_stream("hi")]
    assert caught.value.partial is not None and caught.value.partial.text


async def test_a_malformed_request_is_refused_by_the_test_server(
    server: LLMTestServer, gemini: MakeGemini
) -> None:
    llm = gemini(api_params={"not_a_gemini_field": 1})
    with pytest.raises(Exception, match="Unknown name 'not_a_gemini_field'"):
        await llm.chat("hi")
