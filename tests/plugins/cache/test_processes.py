"""Several processes on one SQLite file: each one's answers serve the others, and none of their
writes is lost or fails."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from llmplug.testing import LLMTestServer
from llmplug_cache import _sqlite
from llmplug_cache._sqlite import ASK, SCHEMA_VERSION, SQLiteStore

WORKER = str(Path(__file__).with_name("_worker.py"))
KEY_A, KEY_B = "a" * 64, "b" * 64


def run_together(base_url: str, cache: dict[str, Any], questions: list[list[str]]) -> list[Any]:
    """One worker per list of questions, all started at once; what each printed."""
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "ask", base_url, json.dumps(cache), *qs],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for qs in questions
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        p.stdin.close()
    results = []
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        out, err = p.stdout.read(), p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        assert p.wait(timeout=120) == 0, err.decode()
        assert b"Traceback" not in err and b"llmplug cache" not in err, err.decode()
        results.append(json.loads(out))
    return results


def test_processes_share_one_sqlite_file(server: LLMTestServer, tmp_path: Path) -> None:
    cache = {"kind": "sqlite", "path": str(tmp_path / "shared.db")}
    mine = [[f"q{p}-{i}" for i in range(15)] for p in range(3)]
    first = run_together(server.base_url, cache, mine)
    assert len(server.requests) == 45  # every question once, every write at the same time
    assert all(not hit for answers in first for _, hit in answers)

    # Each process now asks every other process's questions: all of them are hits.
    theirs = [[q for other in mine if other is not qs for q in other] for qs in mine]
    second = run_together(server.base_url, cache, theirs)
    assert len(server.requests) == 45
    for qs, answers in zip(theirs, second, strict=True):
        assert [text for text, _ in answers] == [f"echo: {q}" for q in qs]
        assert all(hit for _, hit in answers)


# Two stores on one file are two processes as far as SQLite is concerned: each has connections
# of its own, and learns what the other stored only by looking at the file.


async def _served(store: SQLiteStore, key: str) -> bytes | None:
    """What ``store`` serves for ``key`` once it has looked at the file again (as it does on
    its own at most every REFRESH_EVERY, after a read it could not answer)."""
    await asyncio.to_thread(store.sync)
    return await store.get(key)


async def test_an_answer_another_process_stores_later_is_served(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    mine, theirs = SQLiteStore(path, 1 << 30), SQLiteStore(path, 1 << 30)
    await mine.put(KEY_A, b"mine", None)
    await asyncio.to_thread(mine.flush)
    assert await mine.get(KEY_B) is None  # and now it knows the file's keys

    await theirs.put(KEY_B, b"theirs", None)
    await asyncio.to_thread(theirs.flush)
    assert await _served(mine, KEY_B) == b"theirs"
    assert await mine.get(KEY_A) == b"mine"


async def test_answers_stored_after_a_clear_are_still_learned_by_other_processes(
    tmp_path: Path,
) -> None:
    # The rows' ids once started again from 1 after a clear, below the last id the other
    # process had looked at: it never learned a key stored after that, and asked again.
    path = str(tmp_path / "shared.db")
    mine, theirs = SQLiteStore(path, 1 << 30), SQLiteStore(path, 1 << 30)
    for i in range(3):
        await theirs.put(f"{i:064x}", b"old", None)
    await asyncio.to_thread(theirs.flush)
    assert await _served(mine, f"{2:064x}") == b"old"

    assert await asyncio.to_thread(SQLiteStore(path, 1 << 30).clear) == 3
    await theirs.put(KEY_B, b"new", None)
    await asyncio.to_thread(theirs.flush)
    assert await _served(mine, KEY_B) == b"new"


async def test_a_look_learns_more_answers_than_one_read_of_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A look reads the keys in parts (LOOK_ROWS at a time), so a large file's keys are never all
    # in memory as text at once: every part is learned, not only the first.
    monkeypatch.setattr(_sqlite, "LOOK_ROWS", 2)
    path = str(tmp_path / "shared.db")
    mine, theirs = SQLiteStore(path, 1 << 30), SQLiteStore(path, 1 << 30)
    await mine.put(KEY_A, b"mine", None)
    await asyncio.to_thread(mine.flush)
    assert await mine.get(KEY_B) is None  # it knows the file's keys now: misses stay on the loop

    keys = [f"{i:064x}" for i in range(5)]
    for key in keys:
        await theirs.put(key, key.encode(), None)
    await asyncio.to_thread(theirs.flush)
    await asyncio.to_thread(mine.sync)
    for key in keys:
        assert mine.peek(key) is ASK  # known to be in the file: read, not a miss
        assert await mine.get(key) == key.encode()


#: The first release's tables, as its files have them.
VERSION_1 = """
CREATE TABLE entries (
    id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, body BLOB NOT NULL,
    size INTEGER NOT NULL, created REAL NOT NULL, used REAL NOT NULL, expires REAL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX entries_used ON entries (used);
"""
VERSION_1_TRIGGERS = """
CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
END;
CREATE TRIGGER entries_changed AFTER UPDATE OF size ON entries BEGIN
    UPDATE counters SET value = value + NEW.size - OLD.size WHERE name = 'bytes';
END;
"""


def test_a_file_of_the_first_release_keeps_its_answers(
    server: LLMTestServer, tmp_path: Path
) -> None:
    db = tmp_path / "old.db"
    cache = {"kind": "sqlite", "path": str(db)}
    questions = [f"asked before the upgrade {i}" for i in range(3)]
    run_together(server.base_url, cache, [questions])
    # The same answers, in a file laid out as the first release laid it out.
    with closing(sqlite3.connect(db, isolation_level=None)) as con:
        rows = con.execute(
            "SELECT id, key, body, size, created, used, expires, hits FROM entries"
        ).fetchall()
        con.execute("DROP TABLE entries")
        con.execute("DELETE FROM counters WHERE name = 'ids'")
        con.executescript(VERSION_1 + "PRAGMA user_version = 0;")
        con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.executescript(VERSION_1_TRIGGERS)
        (size_before,) = con.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()

    (answers,) = run_together(server.base_url, cache, [[*questions, "a new one"]])
    assert [hit for _, hit in answers] == [True, True, True, False]
    assert len(server.requests) == 4
    with closing(sqlite3.connect(db)) as con:
        assert con.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        (size,) = con.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        (total,) = con.execute("SELECT SUM(size) FROM entries").fetchone()
        (new,) = con.execute("SELECT size FROM entries WHERE id > ?", (len(rows),)).fetchone()
    assert size == total == size_before + new
