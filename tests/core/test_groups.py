"""Model groups over two real test servers standing for two providers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
import pytest

from llmplug import (
    APIConnectionError,
    APIKeyPool,
    APIStatusError,
    BadRequestError,
    Completion,
    ConfigError,
    Done,
    ModelGroup,
    NoMemberAvailableError,
    OpenAICompatible,
    StreamError,
    TextDelta,
    llm_function,
    tool,
)
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest, Reply, ToolCallReply
from llmplug_anthropic import AnthropicCompatible

Make = Callable[..., OpenAICompatible]


def prompts(*servers: LLMTestServer) -> list[str]:
    return [r.json["messages"][-1]["content"] for s in servers for r in s.requests]


async def test_a_provider_killed_mid_run_fails_over_with_nothing_lost_or_twice(
    other: LLMTestServer, member: Make
) -> None:
    with LLMTestServer() as server:
        await killed_mid_run(server, other, member)


async def killed_mid_run(server: LLMTestServer, other: LLMTestServer, member: Make) -> None:
    server.default = Reply(text="from a")
    other.default = Reply(text="from b")
    group = ModelGroup([member(server, "a"), member(other, "b")], strategy="weighted")
    answers = [(await group.chat(f"call {i}")).text for i in range(6)]
    assert answers == ["from a", "from b"] * 3
    server.stop()  # provider a goes away: its connections are refused from now on
    answers = [(await group.chat(f"call {i}")).text for i in range(6, 20)]
    assert answers == ["from b"] * 14
    # Every call reached a provider that answered it exactly once.
    answered = prompts(server, other)
    assert sorted(answered) == sorted(f"call {i}" for i in range(20))
    assert group.status()["a/llama"]["state"] == "open"


async def test_a_stream_that_failed_after_output_raises_and_does_not_fall_back(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    server.push(Fault("cut_stream", after=3))
    group = ModelGroup([member(server, "a")], fallbacks=[member(other, "b")])
    seen: list[str] = []
    with pytest.raises(StreamError):
        async for event in group.chat_stream("tell me"):
            if isinstance(event, TextDelta):
                seen.append(event.text)
    assert seen  # the caller had output
    assert other.requests == []


async def test_a_stream_that_failed_before_output_falls_back(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    server.default = Error(status=503, message="overloaded")
    other.default = Reply(text="the fallback")
    group = ModelGroup([member(server, "a")], fallbacks=[member(other, "b")])
    events = [e async for e in group.chat_stream("tell me")]
    assert isinstance(events[-1], Done) and events[-1].completion.text == "the fallback"
    assert len(server.requests) == 2  # a's own retry, then the move


async def test_a_400_is_never_moved_to_a_fallback(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    server.default = Error(status=400, message="bad temperature")
    group = ModelGroup([member(server, "a")], fallbacks=[member(other, "b")])
    with pytest.raises(BadRequestError):
        await group.chat("hi", temperature=7)
    assert other.requests == []
    assert group.status()["a/llama"]["failures"] == 0


async def test_a_call_too_large_for_a_member_goes_to_a_larger_one_unsent(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    other.default = Reply(text="the large one")
    group = ModelGroup(
        [member(server, "small", context_window=1_000)],
        context_window_fallbacks=[member(other, "large", context_window=200_000)],
    )
    reply = await group.chat("word " * 2_000, max_tokens=100)
    assert reply.text == "the large one"
    assert server.requests == []
    server.default = Reply(text="the small one")
    assert (await group.chat("short", max_tokens=100)).text == "the small one"
    assert group.context_window == 200_000


async def test_a_providers_context_length_error_takes_the_same_route(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    server.default = Error(
        status=400,
        message="This model's maximum context length is 8192 tokens",
        code="context_length_exceeded",
    )
    other.default = Reply(text="the large one")
    group = ModelGroup(
        [member(server, "small", context_window=8_192)],
        context_window_fallbacks=[member(other, "large", context_window=200_000)],
        fallbacks=[],
    )
    assert (await group.chat("a prompt the estimate thought would fit")).text == "the large one"
    assert len(server.requests) == 1  # a 400 is not retried by the member either


async def test_a_circuit_ejects_a_failing_member_and_readmits_it_after_the_cooldown(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    now = [0.0]
    server.default = Error(status=500, message="down")
    other.default = Reply(text="b")
    group = ModelGroup(
        [member(server, "a", max_retries=0), member(other, "b")],
        strategy="weighted",
        failure_threshold=2,
        cooldown=30.0,
        clock=lambda: now[0],
    )
    for _ in range(6):
        assert (await group.chat("hi")).text == "b"
    assert len(server.requests) == 2  # ejected after its second failure: never asked again
    status = group.status()["a/llama"]
    assert status["state"] == "open" and status["ejected_for_s"] == 30.0

    now[0] = 31.0
    assert group.status()["a/llama"]["state"] == "half_open"
    server.default = Reply(text="a is back")
    texts = {(await group.chat("hi")).text for _ in range(4)}
    assert texts == {"a is back", "b"}
    assert group.status()["a/llama"]["state"] == "closed"


async def test_a_half_open_member_takes_one_trial_even_when_two_calls_fall_over_to_it(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    now = [0.0]
    server.default = Error(status=503, message="a is down")
    # b: down, then (its trial) an answer held back until released, then up.
    other.push(Error(status=503, message="b is down"), Fault("stall_after_headers"))
    other.default = Reply(text="b is up")
    group = ModelGroup(
        [member(server, "a", max_retries=0), member(other, "b", max_retries=0)],
        strategy="cost",  # neither is priced: always a, then b
        failure_threshold=1,
        cooldown=30.0,
        clock=lambda: now[0],
    )
    with pytest.raises(APIStatusError, match="b is down"):
        await group.chat("both fail")
    now[0] = 31.0  # both half-open: each may take one trial call
    # The first call takes a's trial; the second can only take b's, which is held open. When
    # a fails, the first call may not take b's trial too: it gets a's error at once.
    first = asyncio.create_task(group.chat("first"))
    second = asyncio.create_task(group.chat("second"))
    with pytest.raises(APIStatusError, match="a is down"):
        await first
    other.release_stalls()
    assert isinstance(await second, Completion)
    assert prompts(other) == ["both fail", "second"]
    assert group.status()["b/llama"]["state"] == "closed"
    assert group.status()["a/llama"]["state"] == "open"


async def test_every_member_ejected_is_an_error_naming_them(
    server: LLMTestServer, member: Make
) -> None:
    server.default = Error(status=503, message="down")
    # Back in 10 minutes: longer than a call waits for a member (member_wait_timeout, 60 s).
    group = ModelGroup([member(server, "a", max_retries=0)], failure_threshold=1, cooldown=600)
    with pytest.raises(Exception, match="down"):
        await group.chat("hi")
    with pytest.raises(NoMemberAvailableError, match="a/llama open"):
        await group.chat("hi")


async def test_a_dead_member_moves_to_the_next_member_before_any_fallback(
    other: LLMTestServer, member: Make
) -> None:
    dead = LLMTestServer().start()
    dead.stop()
    other.default = Reply(text="alive")
    group = ModelGroup([member(dead, "dead"), member(other, "alive")], strategy="least_loaded")
    assert (await group.chat("hi")).text == "alive"
    with pytest.raises(APIConnectionError):
        await ModelGroup([member(dead, "dead2")]).chat("hi")


@pytest.mark.parametrize("strategy", ["least_loaded", "lowest_latency", "cost"])
async def test_each_default_strategy_answers(
    server: LLMTestServer, other: LLMTestServer, member: Make, strategy: str
) -> None:
    server.default = Reply(text="a")
    other.default = Reply(text="b")
    cheap = member(other, "b", pricing={"input": 0.1, "output": 0.2})
    dear = member(server, "a", pricing={"input": 1.0, "output": 2.0})
    group = ModelGroup([dear, cheap], strategy=strategy)
    texts = [(await group.chat("hi")).text for _ in range(4)]
    if strategy == "cost":
        assert texts == ["b"] * 4
    else:
        assert set(texts) <= {"a", "b"}
    assert group.usage.total().output_tokens > 0


def test_an_unknown_strategy_is_a_config_error(server: LLMTestServer, member: Make) -> None:
    with pytest.raises(ConfigError, match="'fastest'"):
        ModelGroup([member(server, "a")], strategy="fastest")


class Weather(msgspec.Struct):
    city: str
    sky: str


@tool(name="get_sky", description="The sky over a city")
async def get_sky(city: str) -> str:
    """Args:
    city: the city's name
    """
    return "clear"


async def test_a_chat_member_falls_back_to_an_anthropic_member_with_typed_output_and_tools(
    server: LLMTestServer, other: LLMTestServer, member: Make
) -> None:
    server.default = Error(status=503, message="overloaded")
    claude = AnthropicCompatible(
        api_key_pool=APIKeyPool(["sk-ant"], "anthropic", shared=False),
        model_name="claude",
        base_url=other.base_url,
        max_retries=0,
    )
    group = ModelGroup([member(server, "a", max_retries=0)], fallbacks=[claude])

    @llm_function(llm_interface=group, toolkit=[get_sky])
    async def weather(city: str) -> Weather:
        """Say what the sky is like in the city."""

    def respond(req: RecordedRequest) -> Reply:
        if len(req.json["messages"]) == 1:  # first turn: ask for the tool
            return Reply(tool_calls=[ToolCallReply(name="get_sky", arguments={"city": "Oslo"})])
        # Then the typed answer, through the tool the wire made of the return type.
        names = {t["name"] for t in req.json["tools"]}
        assert names == {"get_sky", "Weather"}
        return Reply(
            tool_calls=[ToolCallReply(name="Weather", arguments={"city": "Oslo", "sky": "clear"})]
        )

    other.handler = respond
    try:
        assert await weather("Oslo") == Weather(city="Oslo", sky="clear")
    finally:
        await claude.aclose()
    assert {r.api for r in other.requests} == {"anthropic"}
    assert {r.api for r in server.requests} == {"chat"}
    tools = {t["name"] for t in other.requests[0].json["tools"]}
    assert "get_sky" in tools


async def test_a_provider_killed_with_calls_in_flight_loses_none(
    other: LLMTestServer, member: Make
) -> None:
    other.default = Reply(text="from b")
    with LLMTestServer() as doomed:
        doomed.default = Reply(text="from a", delay=0.05)  # calls are in flight when it dies
        group = ModelGroup([member(doomed, "a"), member(other, "b")], strategy="least_loaded")
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> str:
            async with gate:
                return (await group.chat(f"call {i}")).text

        calls = [asyncio.create_task(one(i)) for i in range(40)]
        await asyncio.to_thread(doomed.wait_for_requests, 4)
        await asyncio.to_thread(doomed.stop)
        texts = await asyncio.gather(*calls)
    assert len(texts) == 40 and set(texts) <= {"from a", "from b"}
    # Every call the doomed provider did not answer was answered by the other, once.
    assert sorted(prompts(other)) == sorted(
        f"call {i}" for i, t in enumerate(texts) if t == "from b"
    )
    assert texts.count("from b") > 0
