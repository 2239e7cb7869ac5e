"""Faults over real HTTP: every one ends in success or a documented typed error within its
timeout; nothing hangs, nothing is retried that must not be, no output is duplicated, and no
key lease is left behind."""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

import llmplug
from llmplug import (
    APIStatusError,
    APITimeoutError,
    ConfigError,
    InternalServerError,
    LLMInterface,
    NoKeyAvailableError,
    OpenAICompatible,
    RateLimitError,
    StreamError,
    TextDelta,
)
from llmplug.testing import Error, Fault, LLMTestServer, Raw, Reply

MakeLLM = Callable[..., OpenAICompatible]

#: A hang guard, not a speed check: every scenario here finishes in well under a second or two.
HANG = 15.0


def no_leases(llm: LLMInterface) -> None:
    """After any call, fault or not, no key may stay leased."""
    assert [s["in_flight"] for s in llm.key_pool.status()] == [0] * len(llm.key_pool)


async def collect(llm: LLMInterface, seen: list[str], **params: Any) -> None:
    """Consume a stream, keeping the text deltas that reached us."""
    async with asyncio.timeout(HANG):
        async for event in llm.chat_stream("hi", **params):
            if isinstance(event, TextDelta):
                seen.append(event.text)


def placed(where: str, **option: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One option, given to the interface or to the call: (interface kwargs, call kwargs)."""
    return (option, {}) if where == "interface" else ({}, option)


def sse(delta: dict[str, object]) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "test-model"}
    choice = {"index": 0, "delta": delta, "finish_reason": None}
    return b"data: " + msgspec.json.encode({**chunk, "choices": [choice]}) + b"\n\n"


# -- 429s, keys and cooldowns -------------------------------------------------------------------


async def test_a_429_storm_on_one_key_of_three(server: LLMTestServer, make_llm: MakeLLM) -> None:
    storm = Error(status=429, message="Rate limit reached", headers={"retry-after": "30"})
    server.handler = lambda r: storm if r.api_key == "sk-storm" else None
    llm = make_llm(keys=("sk-storm", "sk-ok-1", "sk-ok-2"))
    for i in range(30):
        assert (await llm.chat(f"n{i}")).text == f"echo: n{i}"
    # Concurrent calls too: selection is synchronous, so none of them picks the resting key.
    texts = await asyncio.gather(*(llm.chat(f"c{i}") for i in range(30)))
    assert [c.text for c in texts] == [f"echo: c{i}" for i in range(30)]
    used = Counter(r.api_key for r in server.requests)
    assert used["sk-storm"] == 1  # hit once, then it rests
    assert used["sk-ok-1"] + used["sk-ok-2"] == 60
    assert abs(used["sk-ok-1"] - used["sk-ok-2"]) <= 1
    stormy = llm.key_pool.status()[0]
    assert (stormy["state"], stormy["cooldown_reason"]) == ("cooling", "rate limited (429)")
    assert 25 < stormy["cooldown_seconds"] <= 30
    assert [s["state"] for s in llm.key_pool.status()[1:]] == ["ok", "ok"]
    no_leases(llm)


@pytest.mark.parametrize(
    ("header", "value", "seconds"),
    [("x-ratelimit-reset-requests", "1m30s", 90), ("x-ratelimit-reset-tokens", "6m0s", 360)],
)
async def test_429_without_retry_after_cools_until_the_reset_header(
    server: LLMTestServer, make_llm: MakeLLM, header: str, value: str, seconds: float
) -> None:
    server.push(Error(status=429, message="slow down", headers={header: value}), key="sk-a")
    llm = make_llm(keys=("sk-a", "sk-b"))
    assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b"]
    a = llm.key_pool.status()[0]
    assert a["state"] == "cooling"
    assert seconds - 10 < a["cooldown_seconds"] <= seconds
    no_leases(llm)


async def test_retry_after_as_an_http_date_is_honoured(
    server: LLMTestServer, make_llm: MakeLLM, arrivals: list[float]
) -> None:
    # An HTTP date has whole seconds: aim at a whole second at least 0.6 s away.
    when = datetime.fromtimestamp(math.ceil(time.time() + 0.6), UTC)
    date = email.utils.format_datetime(when, usegmt=True)
    server.push(Error(status=429, message="later", headers={"retry-after": date}), Reply(text="ok"))
    llm = make_llm()
    assert (await llm.chat("hi")).text == "ok"
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.5
    no_leases(llm)


QUOTA_GONE = [
    Error(status=429, message="You exceeded your current quota", code="insufficient_quota"),
    Error(status=402, message="Insufficient credits"),
]


@pytest.mark.parametrize("refusal", QUOTA_GONE, ids=["429-insufficient_quota", "402"])
async def test_a_key_without_quota_is_disabled_and_the_call_moves_on(
    server: LLMTestServer, make_llm: MakeLLM, refusal: Error
) -> None:
    server.push(refusal, key="sk-empty")
    llm = make_llm(keys=("sk-empty", "sk-full"))
    for _ in range(3):
        assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.api_key for r in server.requests] == ["sk-empty"] + ["sk-full"] * 3
    empty = llm.key_pool.status()[0]
    assert empty["state"] == "disabled"
    assert empty["cooldown_reason"] == f"quota exhausted: {refusal.message}"
    assert empty["cooldown_seconds"] > 3000
    no_leases(llm)


@pytest.mark.parametrize("refusal", QUOTA_GONE, ids=["429-insufficient_quota", "402"])
async def test_a_lone_key_without_quota_raises_at_once(
    server: LLMTestServer, make_llm: MakeLLM, refusal: Error
) -> None:
    server.default = refusal
    llm = make_llm()
    with pytest.raises(APIStatusError, match=refusal.message or "") as info:
        await llm.chat("hi")
    assert info.value.status == refusal.status
    assert len(server.requests) == 1
    assert llm.key_pool.status()[0]["state"] == "disabled"
    no_leases(llm)


async def test_every_key_cooling_too_long_raises_no_key_available(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Error(status=429, message="slow down", headers={"retry-after": "60"})
    llm = make_llm(keys=("sk-a", "sk-b"), key_wait_timeout=1.0)
    with pytest.raises(RateLimitError, match="slow down"):
        await llm.chat("hi")  # both keys hit, then the server's own 429
    assert len(server.requests) == 2
    with pytest.raises(NoKeyAvailableError) as info:
        await llm.chat("again")
    assert len(server.requests) == 2  # raised without sending anything
    err = info.value
    for fp in llm.key_pool.fingerprints:
        assert f"{fp} cooling" in str(err)
    assert "key_wait_timeout=1" in str(err)
    assert [(k["key"], k["state"], k["cooldown_reason"]) for k in err.keys] == [
        (fp, "cooling", "rate limited (429)") for fp in llm.key_pool.fingerprints
    ]
    no_leases(llm)


def test_no_key_available_error_is_public() -> None:
    assert getattr(llmplug, "NoKeyAvailableError", None) is NoKeyAvailableError
    assert "NoKeyAvailableError" in llmplug.__all__


async def test_every_key_cooling_briefly_makes_the_call_wait_and_succeed(
    server: LLMTestServer, make_llm: MakeLLM, arrivals: list[float]
) -> None:
    brief = Error(status=429, message="slow down", headers={"retry-after": "0.3"})
    server.push(brief, key="sk-a")
    server.push(brief, key="sk-b")
    llm = make_llm(keys=("sk-a", "sk-b"))
    assert (await llm.chat("hi")).text == "echo: hi"
    assert len(arrivals) == 3 and arrivals[2] - arrivals[1] >= 0.25  # waited for a key to come back
    no_leases(llm)


# -- server errors ------------------------------------------------------------------------------


async def test_a_5xx_burst_within_max_retries_succeeds(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=500), Error(status=502), Error(status=503), Reply(text="ok"))
    llm = make_llm()
    assert (await llm.chat("hi")).text == "ok"
    assert len(server.requests) == 4
    no_leases(llm)


async def test_a_5xx_burst_one_longer_than_max_retries_raises(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(
        Error(status=500), Error(status=502), Error(status=503), Error(status=500), Reply(text="x")
    )
    llm = make_llm()
    with pytest.raises(InternalServerError) as info:
        await llm.chat("hi")
    assert info.value.attempts == 4 and info.value.status == 500
    assert len(server.requests) == 4
    no_leases(llm)


async def test_an_html_502_from_a_proxy_is_retried(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
    server.push(Error(status=502, body=page, content_type="text/html"), Reply(text="ok"))
    llm = make_llm()
    assert (await llm.chat("hi")).text == "ok"
    assert len(server.requests) == 2
    server.push(Error(status=503, message="no", headers={"x-should-retry": "false"}))
    with pytest.raises(InternalServerError, match="no"):
        await llm.chat("hi")
    assert len(server.requests) == 3
    no_leases(llm)


# -- transport faults ---------------------------------------------------------------------------


async def test_a_reset_before_headers_is_retried(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.push(Fault("reset_before_headers"), Reply(text="one"))
    server.push(Fault("reset_before_headers"), Reply(text="two"))
    llm = make_llm()
    assert (await llm.chat("hi")).text == "one"
    seen: list[str] = []
    await collect(llm, seen)
    assert "".join(seen) == "two"
    assert len(server.requests) == 4
    no_leases(llm)


async def test_a_stream_cut_midway_keeps_exactly_what_arrived(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Fault("cut_stream", after=5), Reply(text="must never be sent"))
    llm = make_llm()
    seen: list[str] = []
    with pytest.raises(StreamError, match="broke after output") as info:
        await collect(llm, seen)
    assert seen == ["a", " b", " c", " d", " e"]
    assert info.value.partial is not None and info.value.partial.text == "a b c d e"
    assert len(server.requests) == 1
    no_leases(llm)


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "stream"])
@pytest.mark.parametrize("where", ["interface", "call"])
async def test_a_stall_after_headers_times_out_before_any_output(
    server: LLMTestServer, make_llm: MakeLLM, where: str, stream: bool
) -> None:
    server.default = Fault("stall_after_headers", seconds=10)
    on_llm, on_call = placed(where, timeout=0.3)
    llm = make_llm(max_retries=1, **on_llm)
    seen: list[str] = []
    with pytest.raises(APITimeoutError, match="timed out") as info:
        if stream:
            await collect(llm, seen, **on_call)
        else:
            async with asyncio.timeout(HANG):
                await llm.chat("hi", **on_call)
    assert seen == []
    assert info.value.attempts == 2
    assert len(server.requests) == 2
    await server.client_aborts_reached(2)  # the client hung up on both stalls
    no_leases(llm)


@pytest.mark.parametrize("where", ["interface", "call"])
async def test_a_never_ending_stream_is_cut_at_total_timeout(
    server: LLMTestServer, make_llm: MakeLLM, where: str
) -> None:
    server.default = Fault("never_ending", seconds=30)
    on_llm, on_call = placed(where, total_timeout=1.0)
    llm = make_llm(**on_llm)
    seen: list[str] = []
    with pytest.raises(StreamError, match=r"total_timeout=1s") as info:
        await collect(llm, seen, **on_call)
    assert seen  # output had reached the caller, so it is a StreamError, not a retry
    assert info.value.partial is not None and info.value.partial.text == "".join(seen)
    assert len(server.requests) == 1
    await server.client_aborts_reached(1)
    no_leases(llm)


async def test_a_stream_cut_at_total_timeout_has_the_timeout_as_its_cause(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Fault("never_ending", seconds=30)
    # Long enough for the first event to arrive even on a loaded machine's first call.
    llm = make_llm(total_timeout=1.0)
    with pytest.raises(StreamError) as info:
        await collect(llm, [])
    assert isinstance(info.value.__cause__, APITimeoutError)


async def test_total_timeout_never_cancels_the_callers_code_between_events(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Fault("never_ending", seconds=30)
    llm = make_llm(total_timeout=0.2)
    slept = False
    with pytest.raises(StreamError, match=r"total_timeout=0.2s"):
        async with asyncio.timeout(HANG):
            async for event in llm.chat_stream("hi"):
                if isinstance(event, TextDelta) and not slept:
                    await asyncio.sleep(0.5)  # the caller's own code, past the deadline
                    slept = True
    assert slept
    no_leases(llm)


async def test_total_timeout_ends_a_stalled_chat(server: LLMTestServer, make_llm: MakeLLM) -> None:
    server.default = Fault("stall_after_headers", seconds=10)
    llm = make_llm()
    with pytest.raises(APITimeoutError, match=r"total_timeout=0.5s"):
        async with asyncio.timeout(HANG):
            await llm.chat("hi", total_timeout=0.5)
    assert len(server.requests) == 1
    no_leases(llm)


# -- broken stream data -------------------------------------------------------------------------


@pytest.mark.parametrize("first", [True, False], ids=["first-event", "after-output"])
async def test_invalid_json_in_a_stream_is_not_retried(
    server: LLMTestServer, make_llm: MakeLLM, first: bool
) -> None:
    good = [] if first else [sse({"role": "assistant"}), sse({"content": "Hel"})]
    server.push(Raw(chunks=[*good, b"data: {not json\n\n"]), Reply(text="must never be sent"))
    llm = make_llm()
    seen: list[str] = []
    with pytest.raises(StreamError) as info:
        await collect(llm, seen)
    assert seen == ([] if first else ["Hel"])
    assert info.value.partial is not None and info.value.partial.text == "".join(seen)
    assert len(server.requests) == 1
    no_leases(llm)


async def test_an_sse_event_over_the_size_limit_is_refused(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    from llmplug._wire._sse import DEFAULT_MAX_EVENT_BYTES

    mib = b"x" * (1 << 20)
    # One data line that never ends, ~2.5x the decoder's limit: the client must give up partway.
    endless = [mib] * (DEFAULT_MAX_EVENT_BYTES * 5 // 2 // len(mib))
    opening = [sse({"role": "assistant"}), sse({"content": "Hel"}), b'data: {"choices": "']
    server.push(Raw(chunks=[*opening, *endless]), Reply(text="must never be sent"))
    llm = make_llm()
    seen: list[str] = []
    with pytest.raises(StreamError, match="larger than") as info:
        await collect(llm, seen)
    assert seen == ["Hel"]
    assert info.value.partial is not None and info.value.partial.text == "Hel"
    assert len(server.requests) == 1
    await server.client_aborts_reached(1)  # it stopped reading before the body ended
    no_leases(llm)


# -- budgets and rate-limit headers -------------------------------------------------------------


async def test_tokens_per_minute_charges_the_estimate_then_the_real_usage(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    server.push(Reply(text="a b c", usage=usage))
    llm = make_llm(tokens_per_minute=600)
    tpm = llm.get_rate_limit_status()["tokens_per_minute"]
    assert tpm["capacity"] == 600 and tpm["refill_rate"] == 10.0 and tpm["available"] == 600
    during = None
    async for _ in llm.chat_stream("hi", max_tokens=400):
        if during is None:
            during = llm.get_rate_limit_status()["tokens_per_minute"]["available"]
    assert (
        during is not None and during < 600 - 400 + 50
    )  # the estimate (prompt + max_tokens) was charged
    after = llm.get_rate_limit_status()["tokens_per_minute"]["available"]
    assert 600 - 15 <= after <= 600  # ...and reconciled with the 15 tokens really used
    assert llm.get_rate_limit_status()["available"] > 0  # the request bucket is still there
    with pytest.raises(ConfigError, match="can never pass"):
        await llm.chat("hi", max_tokens=1000)  # an estimate above the whole budget
    assert len(server.requests) == 1
    no_leases(llm)


async def test_remaining_requests_zero_on_a_success_rests_the_key(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}
    server.push(Reply(text="ok", headers=spent), key="sk-a")
    llm = make_llm(keys=("sk-a", "sk-b"))
    for _ in range(3):
        await llm.chat("hi")
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b", "sk-b"]
    a = llm.key_pool.status()[0]
    assert a["state"] == "cooling" and "rate-limit headers" in str(a["cooldown_reason"])
    assert 25 < a["cooldown_seconds"] <= 30
    no_leases(llm)


async def test_remaining_tokens_tighten_the_budget_of_a_lone_key(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    server.push(Reply(text="ok", usage=usage, headers={"x-ratelimit-remaining-tokens": "5"}))
    llm = make_llm(tokens_per_minute=60)  # refills 1 token/s: the 5 cannot hide in refill
    await llm.chat("hi", max_tokens=30)
    assert llm.get_rate_limit_status()["tokens_per_minute"]["available"] <= 5
    no_leases(llm)
