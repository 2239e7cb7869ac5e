"""Retries: what is retried, how long it waits, which key it goes to, and what is raised."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmplug import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    OpenAICompatible,
    PermissionDeniedError,
    RateLimitError,
    StreamError,
    TextDelta,
    UnprocessableEntityError,
)
from llmplug.testing import Error, Fault, LLMTestServer, Reply

MakeLLM = Callable[..., OpenAICompatible]


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(
    server: LLMTestServer, make_llm: MakeLLM, status: int
) -> None:
    server.push(
        Error(status=status, message="try later"),
        Error(status=status, message="try later"),
        Reply(text="ok"),
    )
    assert (await make_llm(max_retries=2).chat("hi")).text == "ok"
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, UnprocessableEntityError),
    ],
)
async def test_client_errors_raise_at_once_with_the_servers_message(
    server: LLMTestServer, make_llm: MakeLLM, status: int, cls: type[Exception]
) -> None:
    server.push(
        Error(status=status, message=f"the server says {status}", code="some_code", type="invalid")
    )
    with pytest.raises(cls) as info:
        await make_llm().chat("hi")
    err = info.value
    assert isinstance(err, cls)
    assert f"the server says {status}" in str(err)
    assert getattr(err, "status") == status  # noqa: B009
    assert getattr(err, "code") == "some_code"  # noqa: B009
    assert getattr(err, "provider") == "test" and getattr(err, "model") == "test-model"  # noqa: B009
    assert len(server.requests) == 1


async def test_retries_are_bounded_and_the_last_error_says_how_many(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Error(status=500, message="boom")
    with pytest.raises(InternalServerError, match="after 3 attempts") as info:
        await make_llm(max_retries=2).chat("hi")
    assert info.value.attempts == 3
    assert len(server.requests) == 3


async def test_max_retries_zero_tries_once(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.default = Error(status=503, message="down")
    with pytest.raises(InternalServerError):
        await make_llm(max_retries=0).chat("hi")
    assert len(server.requests) == 1


async def test_x_should_retry_overrides_the_status(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Error(status=400, message="retry me", headers={"x-should-retry": "true"}), Reply(text="ok")
    )
    assert (await make_llm().chat("hi")).text == "ok"
    server.clear()
    server.push(Error(status=503, message="do not", headers={"x-should-retry": "false"}))
    with pytest.raises(InternalServerError):
        await make_llm().chat("hi")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after-ms": "300"},
        {"retry-after": "0.3"},
        {"retry-after": "0.3", "retry-after-ms": "300"},
    ],
)
async def test_retry_after_is_honoured(
    server: LLMTestServer, make_llm: MakeLLM, arrivals: list[float], headers: dict[str, str]
) -> None:
    server.push(Error(status=503, message="busy", headers=headers), Reply(text="ok"))
    assert (await make_llm(retry_delay=0.0).chat("hi")).text == "ok"
    assert arrivals[1] - arrivals[0] >= 0.29


async def test_retry_after_over_120_seconds_is_not_waited_for(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=503, message="come back tomorrow", headers={"retry-after": "86400"}))
    with pytest.raises(InternalServerError, match="tomorrow"):
        await make_llm().chat("hi")
    assert len(server.requests) == 1


async def test_429_moves_the_next_attempt_to_another_key(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=429, message="slow down", headers={"retry-after": "30"}), key="sk-a")
    llm = make_llm(keys=("sk-a", "sk-b"))
    assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b"]
    # sk-a cools down for its retry-after: the next calls all go to sk-b, without waiting.
    await llm.chat("again")
    await llm.chat("and again")
    assert [r.api_key for r in server.requests[2:]] == ["sk-b", "sk-b"]
    status = {s["key"]: s for s in llm.key_pool.status()}
    a = status[llm.key_pool.fingerprints[0]]
    assert a["cooldown_reason"] == "rate limited (429)" and a["cooldown_seconds"] > 25


async def test_401_takes_the_key_out_and_uses_another(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=401, message="Invalid API key"), key="sk-bad")
    llm = make_llm(keys=("sk-bad", "sk-good"))
    for _ in range(3):
        assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.api_key for r in server.requests] == ["sk-bad", "sk-good", "sk-good", "sk-good"]
    bad = llm.key_pool.status()[0]
    assert bad["cooldown_reason"] == "HTTP 401: Invalid API key"


async def test_401_with_no_other_key_raises(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Error(status=401, message="Invalid API key"))
    with pytest.raises(AuthenticationError, match="Invalid API key"):
        await make_llm().chat("hi")


async def test_connection_reset_is_retried(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Fault(kind="reset_before_headers"), Reply(text="ok"))
    assert (await make_llm().chat("hi")).text == "ok"


async def test_connection_refused_raises_connection_error(make_llm: MakeLLM) -> None:
    llm = make_llm(base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(APIConnectionError, match="after 2 attempts"):
        await llm.chat("hi")


async def test_read_timeout_is_retried_then_raised(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Fault(kind="stall_after_headers", seconds=5)
    llm = make_llm(timeout=0.2, max_retries=1)
    with pytest.raises(APITimeoutError):
        async for _ in llm.chat_stream("hi"):
            pass
    assert len(server.requests) == 2


async def test_stream_is_retried_before_any_output(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Error(status=500, message="boom"), Fault(kind="reset_before_headers"), Reply(text="fine")
    )
    events = [e async for e in make_llm().chat_stream("hi")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "fine"
    assert len(server.requests) == 3


async def test_stream_is_never_retried_after_output(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Fault(kind="cut_stream", after=3), Reply(text="must not be sent"))
    seen: list[str] = []
    with pytest.raises(StreamError) as info:
        async for e in make_llm().chat_stream("hi"):
            if isinstance(e, TextDelta):
                seen.append(e.text)
    assert seen  # output reached us before the cut
    assert info.value.partial is not None and info.value.partial.text == "".join(seen)
    assert len(server.requests) == 1


async def test_html_502_from_a_proxy(server: LLMTestServer, make_llm: MakeLLM) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    server.default = Error(status=502, body=page, content_type="text/html")
    with pytest.raises(InternalServerError, match="502 Bad Gateway") as info:
        await make_llm(max_retries=1).chat("hi")
    assert info.value.status == 502


async def test_empty_error_body(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Error(status=404, body=b""))
    with pytest.raises(NotFoundError, match=r"HTTP 404.*empty body"):
        await make_llm().chat("hi")


async def test_rate_limit_error_carries_headers(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.default = Error(
        status=429, message="limit", headers={"x-ratelimit-remaining-requests": "0"}
    )
    with pytest.raises(RateLimitError) as info:
        await make_llm(max_retries=0).chat("hi")
    assert info.value.headers is not None
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
