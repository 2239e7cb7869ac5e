"""llmplug against the LiteLLM proxy (a peer nobody here wrote), over real HTTP.

The proxy runs mocked models (see shared/servers/litellm/README.md): ``fake`` answers
"hi there from mock", ``fake-tools`` calls get_weather({"city": "Paris"}), ``fake-429`` and
``fake-500`` always fail. Keys: ``sk-test-a`` and ``sk-test-b`` work, ``sk-test-limited`` gets
3 requests per minute (then 429 with ``retry-after: 60``), any other key gets 401.

The limited key's budget is per minute and shared by every run against the same proxy, so the
tests that use it work whether or not it is already exhausted when they start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from llmplug import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    Completion,
    Done,
    InternalServerError,
    OpenAICompatible,
    RateLimitError,
    TextDelta,
    ToolCallDelta,
    fingerprint,
)

pytestmark = pytest.mark.litellm

MakeLiteLLM = Callable[..., OpenAICompatible]

MOCK_TEXT = "hi there from mock"
GOOD, OTHER_GOOD, LIMITED = "sk-test-a", "sk-test-b", "sk-test-limited"
GET_WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def _stream(llm: OpenAICompatible, *args: Any, **kw: Any) -> tuple[list[str], Completion]:
    """The text deltas of a stream and the completion its Done event carried."""
    texts: list[str] = []
    done: list[Completion] = []
    async for event in llm.chat_stream(*args, **kw):
        assert not done, "an event came after Done"
        if isinstance(event, TextDelta):
            texts.append(event.text)
        elif isinstance(event, Done):
            done.append(event.completion)
        else:
            assert not isinstance(event, ToolCallDelta), event
    assert len(done) == 1, "a stream ends with exactly one Done"
    return texts, done[0]


def _by_key(llm: OpenAICompatible) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in llm.key_pool.status()}


def _assert_no_secret(err: BaseException, *keys: str) -> None:
    shown = f"{err} {err!r} {getattr(err, 'message', '')}"
    for key in keys:
        assert key not in shown


async def _call_until_rate_limited(llm: OpenAICompatible, limit: int = 8) -> RateLimitError:
    """Call until the proxy refuses the (only, limited) key: at most 3 successes a minute, but a
    fixed window may restart once during the loop, hence some slack."""
    for _ in range(limit):
        try:
            completion = await llm.chat("hi")
        except RateLimitError as exc:
            return exc
        assert completion.text == MOCK_TEXT
    pytest.fail(f"the limited key was never refused in {limit} calls")


# -- answers ---------------------------------------------------------------------------------


async def test_chat_returns_text_finish_reason_and_usage(make_litellm: MakeLiteLLM) -> None:
    completion = await make_litellm().chat([{"role": "user", "content": "hello"}])
    assert completion.text == MOCK_TEXT
    assert completion.finish_reason == "stop"
    assert completion.tool_calls == []
    assert completion.model == "fake"
    usage = completion.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_stream_deltas_join_to_the_final_text_and_usage_arrives(
    make_litellm: MakeLiteLLM,
) -> None:
    texts, completion = await _stream(make_litellm(), "hello")
    assert len(texts) > 1, "LiteLLM streams the mock reply in several chunks"
    assert "".join(texts) == completion.text == MOCK_TEXT
    assert completion.finish_reason == "stop"
    # The usage chunk comes after the finish_reason chunk, only because we ask for include_usage.
    usage = completion.usage
    assert usage is not None
    assert usage.input_tokens > 0
    assert usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


async def test_tool_call_comes_back_with_parsed_arguments(make_litellm: MakeLiteLLM) -> None:
    completion = await make_litellm(model="fake-tools").chat(
        "What is the weather in Paris?", tools=[GET_WEATHER]
    )
    assert len(completion.tool_calls) == 1
    call = completion.tool_calls[0]
    assert call.name == "get_weather"
    assert call.id == "call_1"
    assert call.parsed_arguments() == {"city": "Paris"}
    # The assistant message to put back into a history carries the call unchanged.
    message = completion.to_message()
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_weather"
    assert message.tool_calls[0].function.arguments == call.arguments


# -- keys ------------------------------------------------------------------------------------


async def test_a_refused_key_is_taken_out_of_rotation(make_litellm: MakeLiteLLM) -> None:
    llm = make_litellm(["sk-wrong", GOOD])
    for _ in range(5):
        assert (await llm.chat("hi")).text == MOCK_TEXT
    keys = _by_key(llm)
    bad, good = keys[fingerprint("sk-wrong")], keys[fingerprint(GOOD)]
    assert bad["requests"] == 1
    assert bad["errors"] == 1
    assert "401" in bad["cooldown_reason"]
    assert "Invalid API key" in bad["cooldown_reason"]  # the proxy's own words
    assert bad["cooldown_seconds"] > 60
    assert good["requests"] == 5
    assert good["errors"] == 0
    assert "sk-wrong" not in repr(llm.key_pool.status()) + repr(llm.key_pool) + repr(llm)


async def test_a_stream_rotates_away_from_a_refused_key_before_any_output(
    make_litellm: MakeLiteLLM,
) -> None:
    llm = make_litellm(["sk-wrong", GOOD])
    texts, completion = await _stream(llm, "hi")
    assert "".join(texts) == completion.text == MOCK_TEXT
    keys = _by_key(llm)
    assert keys[fingerprint("sk-wrong")]["errors"] == 1
    assert keys[fingerprint(GOOD)]["requests"] == 1


async def test_only_refused_keys_raise_authentication_error_after_each_key_once(
    make_litellm: MakeLiteLLM,
) -> None:
    bad_keys = ["sk-wrong-1", "sk-wrong-2"]
    llm = make_litellm(bad_keys, max_retries=5)
    with pytest.raises(AuthenticationError) as info:
        await llm.chat("hi")
    err = info.value
    assert err.message == "Invalid API key"
    assert err.status == 401
    # LiteLLM sends the code as a string and its own error type.
    assert err.code == "401"
    assert err.type == "auth_error"
    assert err.provider == "litellm"
    assert err.model == "fake"
    assert err.attempts == 2, "each key once, not max_retries + 1 times"
    assert [s["requests"] for s in llm.key_pool.status()] == [1, 1]
    assert err.key_id in llm.key_pool.fingerprints
    assert "Invalid API key" in str(err)
    assert "HTTP 401" in str(err)
    _assert_no_secret(err, *bad_keys)


async def test_a_rate_limited_key_hands_its_calls_to_the_other_key(
    make_litellm: MakeLiteLLM,
) -> None:
    llm = make_litellm([LIMITED, OTHER_GOOD], max_retries=2)
    limited, other = fingerprint(LIMITED), fingerprint(OTHER_GOOD)
    calls = 0
    # Round robin gives the limited key every other call: it is refused within its 3 requests a
    # minute (at once if an earlier run used them up; 16 leaves room for its window restarting).
    while _by_key(llm)[limited]["cooldown_reason"] is None:
        assert calls < 16, f"the limited key was never refused: {llm.key_pool.status()}"
        assert (await llm.chat("hi")).text == MOCK_TEXT
        calls += 1
    refused = _by_key(llm)[limited]
    assert refused["errors"] == 1
    assert "429" in refused["cooldown_reason"]
    assert refused["cooldown_seconds"] > 30, "LiteLLM said retry-after: 60"
    for _ in range(5):
        assert (await llm.chat("hi")).text == MOCK_TEXT
        calls += 1
    keys = _by_key(llm)
    assert keys[limited]["requests"] == refused["requests"], "a cooling key got a request"
    # Every call succeeded; the one refused attempt was retried on the other key at once.
    assert keys[other]["requests"] == calls + 1 - keys[limited]["requests"]
    assert keys[other]["errors"] == 0
    assert keys[limited]["requests"] <= calls // 2 + 1


async def test_a_lone_rate_limited_key_is_not_called_while_it_cools_down(
    make_litellm: MakeLiteLLM,
) -> None:
    llm = make_litellm([LIMITED], max_retries=0, key_wait_timeout=1.0)
    err = await _call_until_rate_limited(llm)
    # With no retries left the proxy's own 429 reaches the caller.
    assert err.status == 429
    assert err.headers is not None
    assert err.headers.get("retry-after") == "60"
    assert err.message.startswith("Rate limit exceeded for api_key: ")
    assert "Limit type: requests" in err.message
    _assert_no_secret(err, LIMITED)
    sent = llm.key_pool.status()[0]["requests"]
    # The key must wait 60 s, more than key_wait_timeout: the next call fails at once, unsent.
    t0 = time.perf_counter()
    with pytest.raises(RateLimitError, match="cooling down") as info:
        await llm.chat("hi")
    assert time.perf_counter() - t0 < 0.5
    _assert_no_secret(info.value, LIMITED)
    assert llm.key_pool.status()[0]["requests"] == sent


async def test_a_lone_rate_limited_key_with_retries_left_raises_the_servers_429(
    make_litellm: MakeLiteLLM,
) -> None:
    llm = make_litellm([LIMITED], max_retries=2, key_wait_timeout=1.0)
    err = await _call_until_rate_limited(llm)
    assert err.status == 429
    assert err.message.startswith("Rate limit exceeded")
    assert err.headers is not None
    assert err.headers.get("retry-after") == "60"


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize(
    ("model", "cls", "status", "server_says", "error_type"),
    [
        (
            "fake-429",
            RateLimitError,
            429,
            "litellm.RateLimitError: this is a mock rate limit error",
            "throttling_error",
        ),
        (
            "fake-500",
            InternalServerError,
            500,
            "litellm.InternalServerError: this is a mock internal server error",
            "internal_server_error",
        ),
    ],
    ids=["fake-429", "fake-500"],
)
async def test_server_failures_are_retried_then_raised_with_the_servers_details(
    make_litellm: MakeLiteLLM,
    model: str,
    cls: type[APIStatusError],
    status: int,
    server_says: str,
    error_type: str,
    stream: bool,
) -> None:
    llm = make_litellm([GOOD], model=model, max_retries=2, retry_delay=0.001)
    t0 = time.perf_counter()
    with pytest.raises(cls) as info:
        await (_stream(llm, "hi") if stream else llm.chat("hi"))
    assert time.perf_counter() - t0 < 3, "tiny retry_delay, and LiteLLM sends no retry-after"
    err = info.value
    assert err.attempts == 3
    assert llm.key_pool.status()[0]["requests"] == 3
    assert err.provider == "litellm"
    assert err.model == model
    assert err.status == status
    assert err.code == str(status)
    assert err.type == error_type
    assert err.message.startswith(server_says)
    assert f"model group '{model}' failed" in err.message
    assert err.key_id == fingerprint(GOOD)
    assert err.headers is not None
    assert err.headers.get("x-litellm-call-id"), "LiteLLM's id of the failed call is kept"
    text = str(err)
    assert server_says in text
    assert f"HTTP {status}" in text
    assert "after 3 attempts" in text
    assert f"litellm/{model}" in text
    _assert_no_secret(err, GOOD)


async def test_a_429_moves_the_retry_to_the_next_key(make_litellm: MakeLiteLLM) -> None:
    llm = make_litellm([GOOD, OTHER_GOOD], model="fake-429", max_retries=2)
    with pytest.raises(RateLimitError) as info:
        await llm.chat("hi")
    assert info.value.attempts == 3
    # No retry-after from LiteLLM here: each key cools for the (tiny) backoff, and the retry goes
    # to the other key instead of waiting for the same one.
    assert [s["requests"] for s in llm.key_pool.status()] == [2, 1]
    assert [s["errors"] for s in llm.key_pool.status()] == [2, 1]


async def test_an_unknown_model_raises_bad_request_at_once(make_litellm: MakeLiteLLM) -> None:
    llm = make_litellm([GOOD], model="no-such-model", max_retries=3)
    with pytest.raises(BadRequestError) as info:
        await llm.chat("hi")
    err = info.value
    # LiteLLM answers an unknown model with 400, not 404.
    assert err.status == 400
    assert "Invalid model name passed in model=no-such-model" in err.message
    assert err.attempts == 1
    assert llm.key_pool.status()[0]["requests"] == 1
    assert llm.key_pool.status()[0]["cooldown_reason"] is None
