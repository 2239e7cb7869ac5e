"""The SQLite cache on a real file: hits, keys, per-call options, streams, single flight."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from llmplug import Done, StreamError, TextDelta
from llmplug.testing import Error, Fault, LLMTestServer, Reply
from llmplug_cache import _sqlite
from llmplug_cache._sqlite import SQLiteStore

from .conftest import PRICING, Cached, flushed, looked


async def test_a_second_identical_call_is_answered_from_the_cache(
    server: LLMTestServer, cached: Cached, db: Path
) -> None:
    # One request token, and the next in an hour: a hit that needed one would wait for it.
    llm = cached(pricing=PRICING, rate_limit_capacity=1, rate_limit_refill_rate=1 / 3600)
    server.push(Reply(text="Paris", usage={"prompt_tokens": 10, "completion_tokens": 3}))
    first = await llm.chat("capital of France?", temperature=0)
    again = await llm.chat("capital of France?", temperature=0, total_timeout=30)

    assert len(server.requests) == 1
    assert (first.cached, again.cached) == (False, True)
    assert again.text == "Paris" and again.usage == first.usage
    assert first.cost == pytest.approx(16e-6)
    assert again.cost == 0 and again.saved_cost == pytest.approx(16e-6)
    # A hit leases no key and is not the interface's spending.
    assert [k["requests"] for k in llm.key_pool.status()] == [1]
    assert llm.usage.calls == 1
    await flushed(llm)
    assert db.exists()  # noqa: ASYNC240


async def test_the_key_ignores_dict_order_and_the_api_key_and_never_stores_the_key(
    server: LLMTestServer, cached: Cached, db: Path
) -> None:
    one = cached(keys=("sk-secret-one",))
    other = cached(keys=("sk-secret-two",))
    server.push(Reply(text="a"))
    await one.chat([{"role": "user", "content": "q"}], temperature=0.5, max_tokens=9, user="u1")
    hit = await other.chat([{"content": "q", "role": "user"}], max_tokens=9, temperature=0.5)
    assert hit.cached and len(server.requests) == 1
    await flushed(one)
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir())
    assert b"sk-secret" not in raw


async def test_what_changes_the_answer_changes_the_key(
    server: LLMTestServer, cached: Cached
) -> None:
    llm = cached()
    tool = {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "int"}}}}
    changed = {**tool, "parameters": {"type": "object", "properties": {"y": {"type": "int"}}}}
    for _ in range(5):
        server.push(Reply(text="x"))
    await llm.chat("q")
    await llm.chat("q", temperature=1)
    await llm.chat("q", tools=[tool])
    await llm.chat("q", tools=[changed])
    await llm.chat("q", response_format={"type": "json_object"})
    assert len(server.requests) == 5
    assert (await llm.chat("q", tools=[tool])).cached


async def test_per_call_options_are_honoured_and_never_sent(
    server: LLMTestServer, cached: Cached
) -> None:
    llm = cached(api_params={"cache_ttl": 60})
    for text in ("one", "two", "three"):
        server.push(Reply(text=text))
    assert (await llm.chat("q")).text == "one"
    off = await llm.chat("q", cache=False)
    assert off.text == "two" and not off.cached
    assert (await llm.chat("q")).text == "one"  # cache=False did not write either
    fresh = await llm.chat("q", cache="refresh")
    assert fresh.text == "three" and not fresh.cached
    assert (await llm.chat("q")).text == "three"
    assert len(server.requests) == 3
    for req in server.requests:
        assert not {"cache", "cache_ttl"} & set(req.json)


async def test_an_expired_answer_is_asked_again(server: LLMTestServer, cached: Cached) -> None:
    llm = cached()
    server.push(Reply(text="old"), Reply(text="new"))
    await llm.chat("q", cache_ttl=0.001)
    await asyncio.sleep(0.01)  # the entry's clock, not a wait for an event: the ttl must pass
    assert (await llm.chat("q")).text == "new"


async def test_errors_are_never_cached(server: LLMTestServer, cached: Cached) -> None:
    llm = cached(max_retries=0)
    server.push(Error(status=400, message="bad"), Reply(text="ok"))
    with pytest.raises(Exception, match="bad"):
        await llm.chat("q")
    assert (await llm.chat("q")).text == "ok"
    assert len(server.requests) == 2


async def test_a_stream_replays_event_for_event(server: LLMTestServer, cached: Cached) -> None:
    llm = cached()
    server.push(Reply(text="one two three", reasoning="hmm, so", chunks=["one", " two", " three"]))
    original = [e async for e in llm.chat_stream("q")]
    replayed = [e async for e in llm.chat_stream("q")]
    assert len(server.requests) == 1
    assert replayed[:-1] == original[:-1]
    assert [type(e) for e in replayed] == [type(e) for e in original]
    done, first = replayed[-1], original[-1]
    assert isinstance(done, Done) and isinstance(first, Done)
    assert done.completion.cached and done.completion.text == first.completion.text
    assert done.completion.usage == first.completion.usage
    # chat() and chat_stream() ask the same question: one answer serves both.
    assert (await llm.chat("q")).cached


async def test_a_stream_that_breaks_or_is_left_stores_nothing(
    server: LLMTestServer, cached: Cached
) -> None:
    llm = cached(max_retries=0)
    server.push(Fault("cut_stream", after=2))
    with pytest.raises(StreamError):
        async for _ in llm.chat_stream("q"):
            pass
    server.push(Reply(text="a b c d"))
    async for event in llm.chat_stream("q"):
        assert isinstance(event, TextDelta)
        break  # the caller leaves before Done
    server.push(Reply(text="whole"))
    got = await llm.chat("q")
    assert got.text == "whole" and not got.cached
    assert len(server.requests) == 3


@pytest.mark.parametrize("known", [False, True], ids=["file-not-looked-at", "file-known"])
async def test_concurrent_identical_calls_reach_the_server_once(
    server: LLMTestServer, cached: Cached, known: bool
) -> None:
    # Known, the first leads without its key (its hint unseen), and the others join it once
    # their keys show it is their question.
    llm = cached()
    if known:
        await looked(llm)
    server.push(Fault("stall_after_headers"))
    calls = [asyncio.ensure_future(llm.chat("same question")) for _ in range(5)]
    streams = [asyncio.ensure_future(_collect(llm, "same question")) for _ in range(2)]
    await server.requests_arrived(1)
    server.release_stalls()
    answers = await asyncio.gather(*calls)
    replays = await asyncio.gather(*streams)
    assert len(server.requests) == 1
    assert len({a.text for a in answers}) == 1
    assert sum(a.cached for a in answers) == 4
    assert all(r[-1].completion.text == answers[0].text for r in replays)


@pytest.mark.parametrize("known", [False, True], ids=["file-not-looked-at", "file-known"])
async def test_when_the_one_asking_fails_a_waiting_call_asks(
    server: LLMTestServer, cached: Cached, known: bool
) -> None:
    llm = cached(max_retries=0)
    if known:
        await looked(llm)
    server.push(Fault("stall_after_headers"))
    leader = asyncio.ensure_future(llm.chat("q"))
    await server.requests_arrived(1)
    follower = asyncio.ensure_future(llm.chat("q"))
    await asyncio.sleep(0)  # let it join the flight
    leader.cancel()
    server.push(Reply(text="asked again"))
    assert (await follower).text == "asked again"
    with pytest.raises(asyncio.CancelledError):
        await leader


async def _collect(llm: object, text: str) -> list[Done]:
    events = [e async for e in llm.chat_stream(text)]  # type: ignore[attr-defined]
    return [e for e in events if isinstance(e, Done)]


async def test_an_answer_that_no_longer_decodes_is_a_miss_and_is_overwritten(
    server: LLMTestServer, cached: Cached, db: Path
) -> None:
    llm = cached()
    server.push(Reply(text="first"), Reply(text="second"))
    await llm.chat("q")
    await flushed(llm)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE entries SET body = x'c1c1c1'")
    assert (await llm.chat("q")).text == "second"
    again = await llm.chat("q")
    assert again.cached and again.text == "second"


async def test_a_flush_of_hundreds_of_answers_stores_each_once(
    server: LLMTestServer, cached: Cached, db: Path
) -> None:
    # More answers than one INSERT takes, and not a power of two: stored in several statements.
    llm = cached()
    questions = [f"question {i}" for i in range(600)]
    first = await asyncio.gather(*(llm.chat(q) for q in questions))
    await flushed(llm)
    with sqlite3.connect(db) as conn:
        rows, keys, size = conn.execute(
            "SELECT count(*), count(DISTINCT key), sum(size) FROM entries"
        ).fetchone()
        (counted,) = conn.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
    assert (rows, keys, counted) == (600, 600, size)
    again = await asyncio.gather(*(llm.chat(q) for q in questions))
    assert all(a.cached and a.text == f.text for a, f in zip(again, first, strict=True))
    assert len(server.requests) == 600


def test_enough_waiting_answers_are_written_without_waiting_for_the_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer gathers answers for FLUSH_EVERY, or until MAX_WAITING of them wait (the memory
    # they hold): here the moment never comes, and the answers are written all the same.
    monkeypatch.setattr(_sqlite, "FLUSH_EVERY", 3600.0)
    monkeypatch.setattr(_sqlite, "MAX_WAITING", 50)
    store = SQLiteStore(str(tmp_path / "c.db"), 1 << 30)
    wrote = threading.Event()
    store.on_write = lambda exc: wrote.set()
    for i in range(49):
        store.keep(f"{i:064x}", b"answer", None)
    assert not wrote.wait(0.05)  # (a bounded look for a write that must not happen)
    store.keep(f"{49:064x}", b"answer", None)
    assert wrote.wait(30)
    with sqlite3.connect(tmp_path / "c.db") as conn:
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (50,)


@pytest.mark.parametrize("made_with", [None, 4096])
async def test_a_new_file_has_large_pages_and_a_file_made_with_others_keeps_them(
    server: LLMTestServer, cached: Cached, db: Path, made_with: int | None
) -> None:
    if made_with is not None:  # a file an earlier release made, with SQLite's default pages
        db.parent.mkdir(parents=True)
        with sqlite3.connect(db) as conn:
            conn.execute(f"PRAGMA page_size = {made_with}")
            conn.execute("CREATE TABLE before (x)")
    llm = cached()
    server.push(Reply(text="a"))
    first = await llm.chat("q")
    await flushed(llm)
    again = await llm.chat("q")
    assert (first.cached, again.cached, again.text) == (False, True, "a")
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA page_size").fetchone() == (made_with or _sqlite.PAGE_SIZE,)
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (1,)
