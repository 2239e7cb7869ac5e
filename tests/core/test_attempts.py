"""Every way an attempt ends keeps the same books: the key's lease goes back, the token budget's
charge goes back unless a reply used it, the failure is logged, and the error is the documented
one. Cancellation, deadlines and interrupted cleanup included."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import threading
from collections.abc import Callable, Iterator

import pytest

from llmplug import (
    APITimeoutError,
    AuthenticationError,
    InternalServerError,
    LLMInterface,
    NoKeyAvailableError,
    OpenAICompatible,
    TextDelta,
)
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest, Reply

MakeLLM = Callable[..., OpenAICompatible]

#: A hang guard, not a speed check.
HANG = 15.0


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    logger = logging.getLogger("llmplug")
    handler = logging.StreamHandler(buf)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield buf
    logger.removeHandler(handler)
    logger.setLevel(level)


def in_flight(llm: LLMInterface) -> list[int]:
    return [s["in_flight"] for s in llm.key_pool.status()]


def tokens_left(llm: LLMInterface) -> float:
    return float(llm.get_rate_limit_status()["tokens_per_minute"]["available"])


# -- leases survive interrupted cleanup (issue: least_loaded never picked that key again) ---------


def test_breaking_out_of_a_stream_at_the_end_of_asyncio_run_leaks_no_lease(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Reply(text="one two three four five six", chunk_delay=0.05)
    llm = make_llm(keys=("sk-a", "sk-b"), strategy="least_loaded")

    async def main() -> str:
        first = ""
        async for event in llm.chat_stream("hi"):
            if isinstance(event, TextDelta):
                first = event.text
                break  # the generator is left suspended; the loop finalizes it as it ends
        gc.collect()
        await llm.aclose()
        return first

    assert asyncio.run(main()) == "one"
    assert in_flight(llm) == [0, 0]
    assert llm._transport.open_clients == 0


async def test_a_cancelled_aclose_of_a_stream_leaks_no_lease(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Reply(text="one two three four five six", chunk_delay=0.05)
    llm = make_llm(keys=("sk-a", "sk-b"), strategy="least_loaded")
    for _ in range(5):
        stream = llm.chat_stream("hi")
        await anext(stream)
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)  # let the close start, then interrupt it
        closing.cancel()
        await asyncio.gather(closing, return_exceptions=True)
        assert in_flight(llm) == [0, 0]
    # Both keys still take turns: none is stuck looking busy.
    server.default = Reply(text="ok")
    await asyncio.gather(*(llm.chat("hi") for _ in range(4)))
    assert {r.api_key for r in server.requests[-4:]} == {"sk-a", "sk-b"}


# -- total_timeout: the same error from chat() and chat_stream(), whenever it strikes ------------


@pytest.mark.parametrize("stream", [False, True], ids=["chat", "chat_stream"])
async def test_total_timeout_during_a_backoff_raises_api_timeout_error_chained(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    server.default = Error(status=500, message="overloaded", headers={"retry-after": "30"})
    llm = make_llm(max_retries=3, total_timeout=0.3)
    with pytest.raises(APITimeoutError, match=r"total_timeout=0\.3s") as info:
        async with asyncio.timeout(HANG):
            if stream:
                async for _ in llm.chat_stream("hi"):
                    pass
            else:
                await llm.chat("hi")
    assert isinstance(info.value.__cause__, InternalServerError)
    assert info.value.__cause__.message == "overloaded"
    assert len(server.requests) == 1
    assert in_flight(llm) == [0]


# -- a call cut short gives its token charge back and says so in the log ------------------------


@pytest.mark.parametrize("how", ["total_timeout", "cancelled"])
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "chat_stream"])
async def test_a_call_cut_short_gives_back_its_token_charge_and_logs_it(
    server: LLMTestServer, make_llm: MakeLLM, logs: io.StringIO, how: str, stream: bool
) -> None:
    server.default = Fault("stall_after_headers", seconds=10)
    # A small budget refills slowly (17 tokens/s), so the charge is still visible when looked at.
    llm = make_llm(tokens_per_minute=1_000, total_timeout=0.3 if how == "total_timeout" else 60)
    assert tokens_left(llm) == 1_000

    async def call() -> None:
        if stream:
            async for _ in llm.chat_stream("hi " * 400):
                pass
        else:
            await llm.chat("hi " * 400)

    task = asyncio.ensure_future(call())
    await server.requests_arrived(1)
    assert tokens_left(llm) < 1_000 - 100  # charged while the request is out
    if how == "cancelled":
        task.cancel()
    with pytest.raises(asyncio.CancelledError if how == "cancelled" else APITimeoutError):
        async with asyncio.timeout(HANG):
            await task
    assert tokens_left(llm) == 1_000
    assert "llm.attempt_failed" in logs.getvalue()
    assert in_flight(llm) == [0]


# -- the key is chosen after the limiter's wait -------------------------------------------------


async def test_requests_queued_on_the_limiter_avoid_a_key_that_cooled_meanwhile(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    first = threading.Event()

    def handler(rec: RecordedRequest) -> Error | None:
        if rec.api_key == "sk-a" and not first.is_set():
            first.set()
            return Error(status=429, headers={"retry-after": "5"})
        return None

    server.handler = handler
    # 200 ms between admissions: the 429 is back long before the second request is let go.
    llm = make_llm(keys=("sk-a", "sk-b"), rate_limit_capacity=1, rate_limit_refill_rate=5.0)
    async with asyncio.timeout(HANG):
        replies = await asyncio.gather(*(llm.chat(f"m{i}") for i in range(10)))
    assert [r.text for r in replies] == [f"echo: m{i}" for i in range(10)]
    # Key A answered 429 with Retry-After: 5 s; the whole run takes two seconds; nothing
    # queued behind that 429 went to A.
    assert [r.api_key for r in server.requests].count("sk-a") == 1


# -- every key refused: no wait for a key that will not come back --------------------------------


async def test_every_key_disabled_raises_at_once_whatever_key_wait_timeout(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.default = Error(status=401, message="Incorrect API key provided")
    llm = make_llm(keys=("sk-a", "sk-b"), key_wait_timeout=7200.0)
    with pytest.raises(AuthenticationError):
        await llm.chat("hi")
    assert [s["state"] for s in llm.key_pool.status()] == ["disabled", "disabled"]
    with pytest.raises(NoKeyAvailableError, match="every key is disabled") as info:
        async with asyncio.timeout(HANG):
            await llm.chat("hi")
    assert "Incorrect API key provided" in str(info.value)
    assert len(server.requests) == 2
