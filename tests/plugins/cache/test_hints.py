"""A question's hint: a miss whose hint no answer has is known without its key, which the
writer thread makes when it writes the answer; a hint some answer has only says the key must be
made. Whichever way a call goes, it gets what it would have got."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from llmplug import Call, HTTPRequest, hookimpl
from llmplug._vocab._call import PROBE_KEY
from llmplug.testing import Fault, LLMTestServer, Reply
from tests.core._probes import Counter, KeyedWire, Stamper

from .conftest import Cached, Watch, flushed, looked


@pytest.mark.parametrize("wire", ["openai-chat", "key-in-body"])
async def test_a_miss_with_an_unseen_hint_is_keyed_where_its_answer_is_written(
    server: LLMTestServer, cached: Cached, watched: Watch, wire: str
) -> None:
    # Of the request its attempt built: one request built in all. Unless that request holds
    # its key (not noted: see Registry.take_request): the writer thread then builds a probe.
    watched(cached(), KeyedWire())
    llm = cached(wire=wire)
    await looked(llm)
    builds = Counter(server.base_url)
    watched(llm, builds)
    loop_thread = threading.current_thread().name

    miss = await llm.chat("q")
    await flushed(llm)
    attempt, *probes = builds.seen
    assert attempt == (loop_thread, False)
    if wire == "openai-chat":
        assert probes == []
    else:
        ((writer, probe),) = probes
        assert writer != loop_thread and probe
    hit = await llm.chat("q")
    assert hit.cached and hit.text == miss.text
    assert len(server.requests) == 1


async def test_calls_sharing_a_hint_are_told_apart_by_their_keys(
    server: LLMTestServer, cached: Cached
) -> None:
    # The same last message, asked at two temperatures at once, three times each: one hint,
    # two keys, two requests, each call answered with its own question's answer.
    llm = cached()
    await looked(llm)
    server.push(Fault("stall_after_headers"))
    server.push(Fault("stall_after_headers"))
    cold = [asyncio.ensure_future(llm.chat("q", temperature=0.1)) for _ in range(3)]
    hot = [asyncio.ensure_future(llm.chat("q", temperature=0.9)) for _ in range(3)]
    await server.requests_arrived(2)
    server.release_stalls()
    colds, hots = await asyncio.gather(*cold), await asyncio.gather(*hot)
    assert len(server.requests) == 2
    assert sorted(r.json["temperature"] for r in server.requests) == [0.1, 0.9]
    assert len({a.text for a in colds}) == 1 and sum(a.cached for a in colds) == 2
    assert len({a.text for a in hots}) == 1 and sum(a.cached for a in hots) == 2

    server.push(Reply(text="cold, asked again"))
    server.push(Reply(text="hot, asked again"))
    for when in ("waiting", "written"):
        again = await llm.chat("q", temperature=0.1), await llm.chat("q", temperature=0.9)
        assert [a.text for a in again] == [colds[0].text, hots[0].text], when
        assert all(a.cached for a in again)
        await flushed(llm)
    assert len(server.requests) == 2


@pytest.mark.parametrize("hinted", [True, False], ids=["with-hint", "earlier-version-row"])
async def test_another_process_finds_every_answer_hinted_or_not(
    server: LLMTestServer, cached: Cached, db: Path, tmp_path: Path, hinted: bool, watched: Watch
) -> None:
    mine = cached()
    answer = await mine.chat("q")
    await flushed(mine)
    if not hinted:  # as a process of an earlier version stored it: no hint
        with sqlite3.connect(db) as con:
            con.execute("UPDATE entries SET hint = NULL")
    # Another path to the same file: a store of its own, as another process has.
    (tmp_path / "theirs.db").symlink_to(db)
    theirs = cached({"path": str(tmp_path / "theirs.db")})
    await looked(theirs)
    builds = Counter(server.base_url)
    watched(theirs, builds)
    hit = await theirs.chat("q")
    assert hit.cached and hit.text == answer.text
    new = await theirs.chat("another question")
    assert not new.cached
    # A file with a row without a hint: hints tell nothing, and every call makes its key.
    probes = sum(probe for _, probe in builds.seen)
    assert probes == (1 if hinted else 2)


async def test_an_answer_whose_key_cannot_be_made_is_not_stored(
    server: LLMTestServer, cached: Cached, caplog: pytest.LogCaptureFixture, watched: Watch
) -> None:
    # Its request holds its key (not noted), and the wire refuses to build a probe.
    class RefusesProbes:
        @hookimpl(tryfirst=True)
        def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
            if key == PROBE_KEY:
                raise ValueError("this wire builds only what it sends")
            return None

    watched(cached(), KeyedWire())
    llm = cached(wire="key-in-body")
    await looked(llm)
    watched(llm, RefusesProbes())
    with caplog.at_level(logging.WARNING, logger="llmplug"):
        first = await llm.chat("q")
        await flushed(llm)
        second = await llm.chat("q")
        await flushed(llm)
    assert not first.cached and not second.cached
    assert len(server.requests) == 2
    assert not caplog.records  # nothing failed that the user must hear of


async def test_a_wrappers_change_to_the_request_is_not_in_the_key(
    server: LLMTestServer, cached: Cached, watched: Watch
) -> None:
    # The key is the request the wire built, on either path: the one noted as it was sent,
    # and the one probed by the calls that look it up.
    llm = cached()
    await looked(llm)
    watched(llm, Stamper())
    miss = await llm.chat("q")
    assert server.requests[0].json["stamped"] is True
    await flushed(llm)
    hit = await llm.chat("q")  # (its hint seen: its key probed, and looked up)
    assert hit.cached and hit.text == miss.text
    assert len(server.requests) == 1


@pytest.mark.parametrize("first", ["chat", "stream"])
async def test_chat_and_stream_find_each_others_answers_without_their_keys(
    server: LLMTestServer, cached: Cached, first: str
) -> None:
    llm = cached()
    await looked(llm)

    async def ask(how: str) -> tuple[str, bool]:
        if how == "chat":
            c = await llm.chat("q")
            return c.text, c.cached
        events = [e async for e in llm.chat_stream("q")]
        done = events[-1].completion  # type: ignore[union-attr]
        return done.text, done.cached

    other = "stream" if first == "chat" else "chat"
    text, cached_first = await ask(first)
    assert not cached_first
    assert await ask(other) == (text, True)  # waiting, its key made now
    await flushed(llm)
    assert await ask(other) == (text, True)  # written
    assert len(server.requests) == 1


async def test_a_file_of_the_previous_version_gains_hints_and_keeps_its_version(
    server: LLMTestServer, cached: Cached, db: Path, tmp_path: Path
) -> None:
    # The previous version's file: no hint column. Opening it adds the column in place and
    # leaves the schema version alone, so a process of the previous version sharing the file
    # never takes it back (which would recount the whole file at each flush of each).
    mine = cached()
    answer = await mine.chat("q")
    await flushed(mine)
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE entries DROP COLUMN hint")
        (version,) = con.execute("PRAGMA user_version").fetchone()
    (tmp_path / "theirs.db").symlink_to(db)
    theirs = cached({"path": str(tmp_path / "theirs.db")})
    await looked(theirs)
    hit = await theirs.chat("q")
    assert hit.cached and hit.text == answer.text
    with sqlite3.connect(db) as con:
        columns = {row[1] for row in con.execute("PRAGMA table_info(entries)")}
        assert con.execute("PRAGMA user_version").fetchone() == (version,)
    assert "hint" in columns
