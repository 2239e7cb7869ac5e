"""Hostile numbers from a provider (``Retry-After: inf``, ``x-ratelimit-reset-*: 1e999``, NaN,
negatives, usage counts of 10**40 or "abc"), over a real socket: every call ends with its answer
(or, for a 429 on the only key, the documented error), a key never rests longer than a day,
nothing stays in flight, and the usage books stay finite and non-negative."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmplug import (
    APIKeyPool,
    Done,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    RateLimitError,
)
from llmplug.testing import Error, LLMTestServer, Raw, Reply
from llmplug.wire import count, seconds
from tests.hostile import (
    BODY_NUMBER,
    EXAMPLES,
    HEADER_NUMBER,
    MAX_COUNT,
    MAX_SECONDS,
    Interfaces,
    bounded,
    usage_ok,
)


@pytest.fixture(scope="module")
def llms(_session_server: LLMTestServer) -> Iterator[Interfaces]:
    made = Interfaces(_session_server)
    yield made
    made.close()


def run(llms: Interfaces, keys: list[str], *calls: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Make the calls one after the other; each one's answer text, or the error it raised;
    then the pool's status."""
    llm = llms.get(keys)

    async def go() -> tuple[list[Any], list[dict[str, Any]]]:
        out: list[Any] = []
        for text in calls:
            try:
                out.append((await llm.chat(text)).text)
            except Exception as exc:
                out.append(exc)
        return out, llm.key_pool.status()

    return llms.runner.run(go())


@EXAMPLES
@given(
    header=st.sampled_from(["retry-after", "retry-after-ms", "x-ratelimit-reset-requests"]),
    value=HEADER_NUMBER,
)
def test_a_429_with_any_delay_rests_its_key_at_most_a_day_and_the_call_goes_on(
    llms: Interfaces, header: str, value: str
) -> None:
    server = llms.server
    server.clear()
    headers = {header: value, "x-ratelimit-remaining-requests": "0"}
    # Whichever key goes first gets the 429; the next attempt goes to the other one.
    server.push(Error(status=429, message="slow down", headers=headers))
    server.push(Reply(text="the answer"))
    answers, status = run(llms, ["sk-a", "sk-b"], "hi")
    assert answers == ["the answer"]
    bounded(status)


@EXAMPLES
@given(value=HEADER_NUMBER)
def test_a_429_on_the_only_key_ends_in_time_with_the_answer_or_the_429(
    llms: Interfaces, value: str
) -> None:
    server = llms.server
    server.clear()
    server.push(Error(status=429, message="slow down", headers={"retry-after": value}))
    server.push(Reply(text="the answer"))
    answers, status = run(llms, ["sk-a"], "hi")
    # A short rest is waited out; a longer one than key_wait_timeout is the server's 429.
    assert answers == ["the answer"] or isinstance(answers[0], RateLimitError), answers
    bounded(status)


@EXAMPLES
@given(
    reset=st.sampled_from(["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]),
    value=HEADER_NUMBER,
    remaining=HEADER_NUMBER,
)
def test_a_reply_with_any_rate_limit_headers_is_answered_and_rests_its_key_at_most_a_day(
    llms: Interfaces, reset: str, value: str, remaining: str
) -> None:
    server = llms.server
    server.clear()
    used_up = {"x-ratelimit-remaining-requests": "0", reset: value}
    server.push(Reply(text="first", headers=used_up))
    server.push(Reply(text="second"))
    answers, status = run(llms, ["sk-a", "sk-b"], "one", "two")
    assert answers == ["first", "second"]
    bounded(status)
    # One key: what the server says is left also tightens the local budgets, which must still
    # admit the next call.
    left = {"x-ratelimit-remaining-requests": remaining, "x-ratelimit-remaining-tokens": remaining}
    server.push(Reply(text="first", headers=left))
    server.push(Reply(text="second"))
    answers, status = run(llms, ["sk-a"], "one", "two")
    assert answers == ["first", "second"]
    bounded(status)


def _chat_body(n: str) -> str:
    return (
        '{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":'
        '{"role":"assistant","content":"the answer"},"finish_reason":"stop"}],"usage":'
        f'{{"prompt_tokens":{n},"completion_tokens":{n},"total_tokens":{n},'
        f'"prompt_tokens_details":{{"cached_tokens":{n}}},'
        f'"completion_tokens_details":{{"reasoning_tokens":{n}}}}}}}'
    )


def _responses_body(n: str) -> str:
    return (
        '{"id":"r","object":"response","status":"completed","model":"m","output":[{"type":'
        '"message","id":"m1","role":"assistant","content":[{"type":"output_text","text":'
        f'"the answer"}}]}}],"usage":{{"input_tokens":{n},"output_tokens":{n},"total_tokens":'
        f'{n},"input_tokens_details":{{"cached_tokens":{n}}}}}}}'
    )


def _chat_stream(n: str) -> str:
    return (
        'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"the answer"}}]}\n\n'
        'data: {"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
        f'"usage":{{"prompt_tokens":{n},"completion_tokens":{n},"total_tokens":{n}}}}}\n\n'
        "data: [DONE]\n\n"
    )


@EXAMPLES
@given(n=BODY_NUMBER, wire=st.sampled_from(["chat", "responses"]))
def test_a_body_with_any_usage_count_is_answered_with_finite_books(
    llms: Interfaces, n: str, wire: str
) -> None:
    server = llms.server
    server.clear()
    body = _chat_body(n) if wire == "chat" else _responses_body(n)
    server.push(Raw(body=body, content_type="application/json"))
    cls = OpenAICompatible if wire == "chat" else OpenAIResponsesCompatible

    llm = llms.get(["sk-a"], cls)
    completion = llms.runner.run(llm.chat("hi"))
    assert completion.text == "the answer"
    assert completion.usage is not None
    usage_ok(completion.usage)
    usage_ok(llm.usage.total())
    bounded(llm.key_pool.status())


@EXAMPLES
@given(n=BODY_NUMBER)
def test_a_stream_with_any_usage_count_is_answered_with_finite_books(
    llms: Interfaces, n: str
) -> None:
    server = llms.server
    server.clear()
    server.push(Raw(body=_chat_stream(n)))

    llm = llms.get(["sk-a"])

    async def go() -> list[Done]:
        return [e async for e in llm.chat_stream("hi") if isinstance(e, Done)]

    done = llms.runner.run(go())
    assert done[0].completion.text == "the answer"
    usage_ok(done[0].completion.usage)
    usage_ok(llm.usage.total())
    bounded(llm.key_pool.status())


@pytest.mark.parametrize("value", ["inf", "1e999", "nan", "-5"])
async def test_a_cooldown_asked_for_by_code_is_at_most_a_day(value: str) -> None:
    pool = APIKeyPool(["sk-a"], "hostile", shared=False)
    pool.cool_down(0, float(value), "told so")
    [row] = pool.status()
    assert row["cooldown_seconds"] == (MAX_SECONDS if value in ("inf", "1e999") else 0.0)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(
    value=st.one_of(
        st.floats(),
        st.integers(min_value=-(10**500), max_value=10**500),
        st.text(),
        st.binary(),
        st.none(),
        st.booleans(),
        HEADER_NUMBER,
        BODY_NUMBER.map(lambda b: msgspec.Raw(b.encode())),
    )
)
def test_every_number_from_a_provider_is_refused_or_within_range(value: object) -> None:
    # What wire plugins are told to read numbers with: never raises, never NaN, infinite or
    # negative, never above the documented bounds.
    n = count(value)
    assert n is None or (type(n) is int and 0 <= n <= MAX_COUNT)
    s = seconds(value)
    assert s is None or (type(s) is float and 0.0 <= s <= MAX_SECONDS)
