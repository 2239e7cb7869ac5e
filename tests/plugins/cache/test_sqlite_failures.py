"""Whatever happens to the cache file, the call goes on (uncached), with one warning."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import pytest

from llmplug.testing import LLMTestServer
from llmplug_cache._sqlite import connect

from .conftest import Cached, flushed


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "llmplug.cache" and r.levelno == logging.WARNING and "failed" in r.getMessage()
    ]


@pytest.mark.parametrize("size", [0, 1500])
async def test_a_file_truncated_mid_run(
    server: LLMTestServer, cached: Cached, db: Path, caplog: pytest.LogCaptureFixture, size: int
) -> None:
    llm = cached()
    for i in range(20):
        await llm.chat(f"q{i}")
    await flushed(llm)
    with open(db, "r+b") as f:  # noqa: ASYNC230 (the damage is the test's setup)
        f.truncate(size)
    for i in range(40):
        got = await llm.chat(f"q{i}")
        assert got.text == f"echo: q{i}"
    assert len(warnings_of(caplog)) <= 1


async def test_a_file_that_is_no_database(
    server: LLMTestServer, cached: Cached, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db.parent.mkdir()
    db.write_bytes(b"this is not a database, " * 200)  # noqa: ASYNC240
    llm = cached()
    for _ in range(5):
        got = await llm.chat("q")
        assert got.text == "echo: q" and not got.cached
    assert len(server.requests) == 5
    assert len(warnings_of(caplog)) == 1


async def test_a_path_that_cannot_be_a_file(
    server: LLMTestServer, cached: Cached, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db.mkdir(parents=True)  # noqa: ASYNC240 (a directory where the file should be)
    llm = cached()
    for _ in range(3):
        assert (await llm.chat("q")).text == "echo: q"
    assert len(warnings_of(caplog)) == 1


async def test_a_locked_file(
    server: LLMTestServer, cached: Cached, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = cached({"busy_timeout": 0.05})
    await llm.chat("warm")
    await flushed(llm)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        for _ in range(3):
            assert (await llm.chat("q")).text == "echo: q"
        await flushed(llm)
        assert (await llm.chat("q")).text == "echo: q"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(warnings_of(caplog)) == 1


async def test_the_size_limit_evicts_the_least_recently_used(
    server: LLMTestServer, cached: Cached, db: Path
) -> None:
    llm = cached({"max_bytes": 6000})
    await llm.chat("kept")
    for i in range(30):
        await llm.chat(f"filler {i}")
        assert (await llm.chat("kept")).cached  # used all along: never the least recent
    await flushed(llm)
    with sqlite3.connect(db) as con:
        (size,) = con.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        (total,) = con.execute("SELECT SUM(size) FROM entries").fetchone()
    assert size == total <= 6000
    assert not (await llm.chat("filler 0")).cached  # the oldest went first


def test_connections_making_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # A store's reader and writer threads (or several processes) open a new file together.
    # Putting it in WAL mode takes a lock SQLite does not wait for: one of them got "database
    # is locked", and the first calls of that cache went uncached with a warning.
    errors: list[BaseException] = []

    def open_it(path: Path) -> None:
        try:
            connect(str(path), 2.0).close()
        except BaseException as exc:
            errors.append(exc)

    for i in range(100):
        threads = [threading.Thread(target=open_it, args=(tmp_path / f"{i}.db",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
