"""The two forms of a stored answer: an interface's answer of chat() is stored as the body the
server sent, and parsed again on a hit; the rest (streams, groups) as a whole Entry. Either way a
hit is the answer the miss returned."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplug import Completion
from llmplug.testing import LLMTestServer, Reply, ToolCallReply
from llmplug.wire import events_of
from llmplug_cache._entry import Entry
from tests.conftest import MakeLLM

from .conftest import PRICING, flushed
from .test_cache_everywhere import WEATHER, WIRES


def as_hit(miss: Completion) -> Completion:
    """What a hit of ``miss`` must be: the same answer, free, saying what it saved."""
    return msgspec.structs.replace(miss, cached=True, cost=0.0, saved_cost=miss.cost)


def bodies(db: Path) -> list[bytes]:
    with sqlite3.connect(db) as con:
        return [bytes(b) for (b,) in con.execute("SELECT body FROM entries ORDER BY id")]


REPLY = Reply(
    text="let me look",
    reasoning="the user wants the weather",
    tool_calls=[ToolCallReply("weather", {"city": "Paris"})],
    usage={"prompt_tokens": 12, "completion_tokens": 7},
    headers={"x-request-id": "req-42"},
)


@pytest.mark.parametrize("wire", WIRES)
async def test_every_wire_answers_hits_of_chat_as_it_answered_the_miss(
    server: LLMTestServer, make_llm: MakeLLM, db: Path, wire: str
) -> None:
    llm = WIRES[wire](make_llm, {"path": str(db)})
    llm.pricing = PRICING
    server.push(REPLY)
    miss = await llm.chat("weather in Paris?", tools=[WEATHER])
    waiting = await llm.chat("weather in Paris?", tools=[WEATHER])  # not written yet
    await flushed(llm)
    stored = await llm.chat("weather in Paris?", tools=[WEATHER])  # read from the file
    streamed = [e async for e in llm.chat_stream("weather in Paris?", tools=[WEATHER])]

    assert len(server.requests) == 1
    assert miss.request_id == "req-42" and miss.cost and miss.tool_calls and miss.reasoning
    assert waiting == stored == as_hit(miss)
    assert streamed == events_of(as_hit(miss))
    # The file holds the body the server sent, not a copy of every field parsed from it.
    (body,) = bodies(db)
    assert isinstance(miss.raw, bytes) and body.endswith(miss.raw)
    assert len(body) < len(msgspec.msgpack.encode(Entry(1, miss)))


async def test_an_answer_stored_by_the_previous_release_still_hits(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    llm = make_llm(cache={"path": str(db)})
    server.push(REPLY)
    miss = await llm.chat("q")
    await flushed(llm)
    # As the previous release stored every answer: the whole Entry, MessagePack.
    with sqlite3.connect(db) as con:
        con.execute("UPDATE entries SET body = ?", (msgspec.msgpack.encode(Entry(1, miss)),))
    assert await llm.chat("q") == as_hit(miss)
    assert len(server.requests) == 1


async def test_the_previous_release_reads_a_stored_body_as_a_miss(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    llm = make_llm(cache={"path": str(db)})
    server.push(REPLY)
    await llm.chat("q")
    await flushed(llm)
    (body,) = bodies(db)
    # The previous release's decoding: what it cannot decode is a miss, which it overwrites.
    with pytest.raises(msgspec.DecodeError):
        msgspec.msgpack.Decoder(Entry).decode(body)


async def test_a_stored_body_the_parser_refuses_is_a_miss_and_is_overwritten(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    llm = make_llm(cache={"path": str(db)})
    server.push(Reply(text="first"), Reply(text="second"))
    await llm.chat("q")
    await flushed(llm)
    (body,) = bodies(db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE entries SET body = ?", (body[: body.index(b"\n") + 1] + b"{not json",))
    assert (await llm.chat("q")).text == "second"
    again = await llm.chat("q")
    assert again.cached and again.text == "second"
    assert len(server.requests) == 2


async def test_a_groups_answer_is_stored_whole_and_hits_as_it_was(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    from llmplug import ModelGroup

    members = [make_llm(), make_llm()]
    group = ModelGroup(members, name="g", cache={"path": str(db)})
    server.push(REPLY)
    miss = await group.chat("q")
    await flushed(group)
    assert await group.chat("q") == as_hit(miss)
    # A member's wire made it: stored whole, not parsed again by a wire the group may not speak.
    (body,) = bodies(db)
    assert msgspec.msgpack.Decoder(Entry).decode(body).completion == miss


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=texts,
    reasoning=st.none() | texts,
    calls=st.lists(st.dictionaries(st.sampled_from(["city", "day", "n"]), texts), max_size=2),
    usage=st.fixed_dictionaries(
        {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)}
    ),
)
@pytest.mark.parametrize("wire", ["openai-chat", "openai-responses"])
async def test_a_hit_is_the_miss_whatever_the_reply(
    server: LLMTestServer,
    make_llm: MakeLLM,
    tmp_path: Path,
    wire: str,
    text: str,
    reasoning: str | None,
    calls: list[dict[str, str]],
    usage: dict[str, int],
) -> None:
    db = tmp_path / f"{wire}.db"
    llm = WIRES[wire](make_llm, {"path": str(db)})
    server.push(
        Reply(
            text=text,
            reasoning=reasoning,
            tool_calls=[ToolCallReply("weather", args) for args in calls],
            usage=usage,
        )
    )
    question = f"{text!r} {reasoning!r} {calls!r} {usage!r}"  # a new question per example
    miss = await llm.chat(question, tools=[WEATHER])
    await flushed(llm)
    assert await llm.chat(question, tools=[WEATHER]) == as_hit(miss)
    await llm.aclose()
