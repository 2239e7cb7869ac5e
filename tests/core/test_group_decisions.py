"""A group decides the same way for a stream as for ``chat()``: the same faults move a call
to the next member (or not), count against a member (or not), and end within the call's
``total_timeout``; its circuit is decided by the calls that belong to it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llmplug import (
    APITimeoutError,
    BadRequestError,
    Done,
    ModelGroup,
    NoMemberAvailableError,
    OpenAICompatible,
    PluginError,
    Registry,
    StreamError,
    hookimpl,
)
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest, Reply

Make = Callable[..., OpenAICompatible]


@pytest.fixture
def member(member: Make) -> Make:
    """The shared members, without retries: each fault reaches the group as it was sent."""
    return functools.partial(member, max_retries=0)


async def ask(group: ModelGroup, streamed: bool, prompt: str = "hi", **params: Any) -> str:
    """The answer's text, by ``chat()`` or by a stream read the way ``llmplug chat`` reads it:
    up to its ``Done``, and no further."""
    if not streamed:
        return (await group.chat(prompt, **params)).text
    stream = group.chat_stream(prompt, **params)
    try:
        async for event in stream:
            if isinstance(event, Done):
                return event.completion.text
    finally:
        await stream.aclose()
    raise AssertionError("the stream ended without its Done")


both = pytest.mark.parametrize("streamed", [False, True], ids=["chat", "stream"])


@both
async def test_a_server_error_before_any_output_moves_the_call_on(
    server: LLMTestServer, other: LLMTestServer, member: Make, streamed: bool
) -> None:
    # Streamed, the 503 arrives as an error event before the first delta; not streamed, as
    # the reply's status. Either way the member could not answer, and the next one does.
    server.default = Error(status=503, message="overloaded", code=503, in_stream_after=0)
    other.default = Reply(text="from b")
    group = ModelGroup([member(server, "a"), member(other, "b")], strategy="cost")
    assert await ask(group, streamed) == "from b"
    assert group.status()["a/llama"]["failures"] == 1


@both
async def test_a_bad_request_never_counts_against_a_member(
    server: LLMTestServer, other: LLMTestServer, member: Make, streamed: bool
) -> None:
    server.default = Error(status=400, message="bad 'temperature'", code=400, in_stream_after=0)
    group = ModelGroup(
        [member(server, "a"), member(other, "b")], strategy="cost", failure_threshold=3
    )
    for _ in range(3):
        with pytest.raises((BadRequestError, StreamError), match="temperature"):
            await ask(group, streamed)
    assert group.status()["a/llama"] | {"latency_ms": None} == {
        "state": "closed",
        "failures": 0,
        "errors": 0,
        "in_flight": 0,
        "requests": 3,
        "latency_ms": None,
        "ejected_for_s": 0.0,
    }
    assert other.requests == []  # the request's fault: no other member is asked


@both
async def test_a_reader_that_stops_at_done_has_had_a_success(
    server: LLMTestServer, member: Make, streamed: bool
) -> None:
    # One call in three fails: with every success on the books, the member is never ejected.
    answers: Iterator[Reply | Error] = iter(
        [Error(status=500, message="hiccup"), Reply(text="ok"), Reply(text="ok")] * 3
    )
    server.default = lambda _: next(answers)
    group = ModelGroup([member(server, "a")], failure_threshold=2)
    results = []
    for _ in range(9):
        try:
            results.append(await ask(group, streamed))
        except Exception as exc:
            results.append(type(exc).__name__)
    assert results == ["InternalServerError", "ok", "ok"] * 3
    status = group.status()["a/llama"]
    assert (status["state"], status["failures"], status["errors"]) == ("closed", 0, 3)
    usage = group.usage.total()
    assert usage.output_tokens == 6 * 1  # six answers of one word each, all counted
    assert status["in_flight"] == 0


@both
async def test_total_timeout_covers_every_member_the_call_is_handed_to(
    server: LLMTestServer, other: LLMTestServer, member: Make, streamed: bool
) -> None:
    third = LLMTestServer().start()
    try:
        for s in (server, other, third):
            s.default = lambda _: Fault("stall_after_headers", seconds=30)
        group = ModelGroup(
            [member(server, "a"), member(other, "b"), member(third, "c")], strategy="cost"
        )
        with pytest.raises(APITimeoutError, match=r"group 'group'.*total_timeout=0.3s"):
            await ask(group, streamed, total_timeout=0.3)
        # a used up the whole budget: nobody else was asked.
        assert (len(server.requests), len(other.requests), len(third.requests)) == (1, 0, 0)
    finally:
        third.stop()


@both
async def test_a_call_older_than_the_ejection_has_no_say_on_the_trial(
    server: LLMTestServer, other: LLMTestServer, member: Make, streamed: bool
) -> None:
    now = [0.0]

    def a_answers(req: RecordedRequest) -> Reply | Error | Fault:
        prompt = req.json["messages"][-1]["content"]
        if prompt == "old":
            return Fault("stall_after_headers", seconds=30)  # until released
        if prompt == "trial":
            return Reply(text="trial", delay=30)  # still running when the old call ends
        if prompt == "ejects a":
            return Error(status=503, message="a is down")
        return Reply(text="from a")

    server.default = a_answers
    other.default = Reply(text="from b")
    cheap, dear = {"input": 0.1, "output": 0.1}, {"input": 1.0, "output": 1.0}
    group = ModelGroup(
        [member(server, "a", pricing=cheap), member(other, "b", pricing=dear)],
        strategy="cost",  # a whenever a can take it, however busy
        failure_threshold=1,
        cooldown=30.0,
        clock=lambda: now[0],
    )
    old = asyncio.create_task(ask(group, streamed, "old"))  # on a while its circuit is closed
    await server.requests_arrived(1)
    assert await ask(group, streamed, "ejects a") == "from b"
    now[0] = 31.0
    trial = asyncio.create_task(ask(group, streamed, "trial"))  # a's one half-open trial
    await server.requests_arrived(3)
    server.release_stalls()
    await old  # a success, but from before a was ejected: the trial alone decides
    assert group.status()["a/llama"]["state"] == "half_open"
    # The trial still runs: a takes no second call.
    assert await ask(group, streamed, "while the trial runs") == "from b"
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    prompts = [r.json["messages"][-1]["content"] for r in server.requests]
    assert prompts == ["old", "ejects a", "trial"]


class Broken:
    """A group strategy plugin with a bug."""

    @hookimpl
    def select_member(self, strategy: str, group: ModelGroup, call: Any) -> Any:
        if strategy == "broken":
            members: dict[str, Any] = {}
            return members["no such member"]
        if strategy == "stranger":
            return "not a member"
        return None


@both
@pytest.mark.parametrize("strategy", ["broken", "stranger"])
async def test_a_strategy_plugins_error_is_a_plugin_error(
    server: LLMTestServer, member: Make, streamed: bool, strategy: str
) -> None:
    registry = Registry()
    registry.register(Broken(), name="broken-strategies")
    group = ModelGroup([member(server, "a")], strategy=strategy, registry=registry)
    with pytest.raises(PluginError, match="choosing a member of group") as caught:
        await ask(group, streamed)
    if strategy == "broken":
        assert caught.value.plugin == "broken-strategies"
    assert server.requests == []


@both
async def test_with_every_member_ejected_a_call_waits_for_the_first_back(
    server: LLMTestServer, member: Make, streamed: bool
) -> None:
    # A 20 ms outage: the member is ejected for 50 ms, and calls meanwhile wait for it (as an
    # interface waits for a cooling key) instead of failing at once.
    server.push(Error(status=503, message="blip"))
    group = ModelGroup([member(server, "a")], failure_threshold=1, cooldown=0.05)
    with pytest.raises(Exception, match="blip"):
        await ask(group, streamed)
    assert group.status()["a/llama"]["state"] == "open"
    answers = await asyncio.gather(*(ask(group, streamed, f"q{i}") for i in range(5)))
    assert answers == [f"echo: q{i}" for i in range(5)]
    assert group.status()["a/llama"]["state"] == "closed"


async def test_a_wait_longer_than_member_wait_timeout_fails_at_once(
    server: LLMTestServer, member: Make
) -> None:
    server.push(Error(status=503, message="blip"))
    group = ModelGroup(
        [member(server, "a")], failure_threshold=1, cooldown=5.0, member_wait_timeout=1.0
    )
    with pytest.raises(Exception, match="blip"):
        await group.chat("hi")
    with pytest.raises(NoMemberAvailableError, match="a/llama open"):
        await group.chat("hi")
    assert len(server.requests) == 1


async def test_a_call_waits_for_a_running_trial_then_goes_to_the_member_it_healed(
    server: LLMTestServer, member: Make
) -> None:
    server.push(Error(status=503, message="blip"), Fault("stall_after_headers", seconds=30))
    group = ModelGroup([member(server, "a")], failure_threshold=1, cooldown=0.05)
    with pytest.raises(Exception, match="blip"):
        await group.chat("ejects a")
    trial = asyncio.create_task(group.chat("trial"))  # waits out the cooldown, then is the trial
    await server.requests_arrived(2)
    second = asyncio.create_task(group.chat("second"))  # a's trial is taken: it must wait
    for _ in range(5):
        await asyncio.sleep(0)  # let it reach its wait
    assert not second.done()
    server.release_stalls()
    assert (await trial).text and (await second).text == "echo: second"
    assert group.status()["a/llama"]["state"] == "closed"
