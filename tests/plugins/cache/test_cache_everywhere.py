"""The cache next to every wire, a group, provider.json and the decorators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmplug import (
    ConfigError,
    Done,
    LLMInterface,
    ModelGroup,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import LLMTestServer, Reply, ToolCallReply
from tests.conftest import MakeLLM

from .conftest import flushed, looked

WIRES: dict[str, Callable[[MakeLLM, dict[str, Any]], LLMInterface]] = {
    "openai-chat": lambda make, cache: make(interface=OpenAICompatible, cache=cache),
    "openai-responses": lambda make, cache: make(interface=OpenAIResponsesCompatible, cache=cache),
    "anthropic-messages": lambda make, cache: make(
        interface=LLMInterface, wire="anthropic-messages", cache=cache
    ),
}


@pytest.mark.parametrize("wire", WIRES)
async def test_every_wire_replays_text_reasoning_and_tool_calls(
    server: LLMTestServer, make_llm: MakeLLM, db: Path, wire: str
) -> None:
    llm = WIRES[wire](make_llm, {"path": str(db)})
    reply = Reply(
        text="let me look",
        reasoning="the user wants the weather",
        tool_calls=[ToolCallReply("weather", {"city": "Paris"})],
    )
    server.push(reply)
    original = [e async for e in llm.chat_stream("weather in Paris?", tools=[WEATHER])]
    replayed = [e async for e in llm.chat_stream("weather in Paris?", tools=[WEATHER])]
    whole = await llm.chat("weather in Paris?", tools=[WEATHER])
    assert len(server.requests) == 1
    assert replayed[:-1] == original[:-1]
    done = original[-1]
    assert isinstance(done, Done)
    assert whole.cached and whole.tool_calls == done.completion.tool_calls
    assert whole.text == done.completion.text and whole.reasoning == done.completion.reasoning

    server.push(Reply(text="other"))
    assert not (await llm.chat("weather in Paris?")).cached  # no tools: another question


WEATHER = {
    "name": "weather",
    "description": "the weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.mark.parametrize("known", [False, True], ids=["file-not-looked-at", "file-known"])
async def test_a_group_caches_its_calls_whichever_member_answers(
    server: LLMTestServer, make_llm: MakeLLM, db: Path, known: bool
) -> None:
    # Known, the group's first call leads without its key (its hint unseen), which the writer
    # thread makes from the group's own call.
    members = [make_llm(), make_llm(interface=OpenAIResponsesCompatible)]
    group = ModelGroup(members, name="pair", strategy="least_loaded", cache={"path": str(db)})
    other = ModelGroup(members, name="other", cache={"path": str(db)})
    if known:
        await looked(group)
    first = await group.chat("q", temperature=0)
    again = await group.chat("q", temperature=0)
    await flushed(group)
    written = await group.chat("q", temperature=0)
    streamed = [e async for e in group.chat_stream("q", temperature=0)]
    assert again.cached and again.text == first.text
    assert written.cached and written.text == first.text
    assert isinstance(streamed[-1], Done) and streamed[-1].completion.cached
    assert len(server.requests) == 1
    assert sum(m.requests for m in group.members) == 1  # a hit is no member's call
    assert not (await other.chat("q", temperature=0)).cached  # a cache per group
    assert not (await group.chat("q", temperature=0, cache=False)).cached
    assert len(server.requests) == 3


async def test_llm_chat_tool_loops_hit_turn_by_turn(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    used: list[str] = []

    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        used.append(city)
        return "sunny"

    @llm_chat(llm_interface=make_llm(cache={"path": str(db)}), toolkit=[weather])
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You answer questions about the weather."""

    async def converse(message: str) -> str:
        replies = [r async for r in agent(message)]
        return "".join(str(r) for r in replies)

    server.push(Reply(tool_calls=[ToolCallReply("weather", {"city": "Paris"})]), Reply(text="sun"))
    first = await converse("Paris?")
    assert len(server.requests) == 2 and used == ["Paris"]
    # Run again: every turn is a hit (the tool still runs: its result is the next question).
    assert await converse("Paris?") == first
    assert len(server.requests) == 2 and used == ["Paris", "Paris"]
    # A conversation that diverges pays from where it diverges.
    server.push(Reply(tool_calls=[ToolCallReply("weather", {"city": "Rome"})]), Reply(text="ok"))
    await converse("Rome?")
    assert len(server.requests) == 4


async def test_client_options_from_decorators_and_api_params_are_never_sent(
    server: LLMTestServer, make_llm: MakeLLM, db: Path
) -> None:
    llm = make_llm(cache={"path": str(db)}, api_params={"cache_ttl": 3600})

    @llm_function(llm_interface=llm, cache="refresh")
    async def answer(question: str) -> str:
        """Answer the question."""

    await answer("q")
    await answer("q", _llm_params={"cache": False})  # type: ignore[call-arg]
    assert len(server.requests) == 2
    for req in server.requests:
        assert not {"cache", "cache_ttl"} & set(req.json)


async def test_bad_settings_fail_when_the_interface_is_made(make_llm: MakeLLM, db: Path) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        make_llm(cache={"path": str(db), "ttl": -1})
    with pytest.raises(ConfigError, match="colour"):
        make_llm(cache={"path": str(db), "colour": "red"})
    with pytest.raises(ConfigError, match="url"):
        make_llm(cache={"kind": "redis"})
    llm = make_llm(cache={"path": str(db)})
    with pytest.raises(ConfigError, match="cache must be"):
        await llm.chat("q", cache="sometimes")
    with pytest.raises(ConfigError, match="cache_ttl"):
        await llm.chat("q", cache_ttl=0)


async def test_provider_json_takes_a_cache_per_model_and_per_group(
    server: LLMTestServer, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_DIR", str(db.parent))
    entry = {"api_keys": ["sk-1"], "base_url": server.base_url, "max_retries": 0}
    data = {
        "prov": [
            {**entry, "model_name": "a", "cache": {"path": "${CACHE_DIR}/a.db", "ttl": 60}},
            {**entry, "model_name": "b"},
        ],
        "groups": {"both": {"members": ["prov/a", "prov/b"], "cache": {"path": str(db)}}},
    }
    models = OpenAICompatible.load_from_dict(data)
    a, b, group = models["prov"]["a"], models["prov"]["b"], models.groups["both"]
    assert a.call_wrapper is not None and b.call_wrapper is None
    assert group.call_wrapper is not None
    await a.chat("q")
    assert (await a.chat("q")).cached
    await b.chat("q")
    assert not (await b.chat("q")).cached
    assert (db.parent / "a.db").exists()
    for m in (a, b):
        await m.aclose()
