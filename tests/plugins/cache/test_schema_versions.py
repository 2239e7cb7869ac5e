"""One cache file shared with processes of schema 2, whose insert trigger kept the bytes
counter: the default file is every project's on the machine, so an older llmplug may write to
it at any time. Whatever the order of their writes, clears and starts, after each flush of this
version the counter is the answers' true total, the file stays within its bound, and every
answer in it is the last one stored for its key."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from llmplug_cache._sqlite import SCHEMA_VERSION, SQLiteStore, connect

from ._schema2 import Schema2Process

KEYS = [f"{i:064x}" for i in range(1, 13)]


def _file(path: str) -> tuple[float, int, int, set[str], dict[str, bytes]]:
    """The bytes counter, the answers' true total, the version, the triggers, the answers."""
    with closing(sqlite3.connect(path)) as db:
        (counter,) = db.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        (total,) = db.execute("SELECT total(size) FROM entries").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        triggers = {
            n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        answers = dict(db.execute("SELECT key, body FROM entries").fetchall())
    return counter, int(total), version, triggers, answers


def _flush(store: SQLiteStore, answers: dict[str, bytes]) -> None:
    for key, body in answers.items():
        store.keep(key, body, None)
    store.flush()


def test_a_schema_2_file_keeps_its_answers_and_loses_its_insert_trigger(tmp_path: Path) -> None:
    path = str(tmp_path / "c.db")
    old = Schema2Process(path)
    old.write({KEYS[0]: b"old" * 50, KEYS[1]: b"older" * 30}, 1 << 30)
    old.close()

    store = SQLiteStore(path, 1 << 30)
    _flush(store, {KEYS[2]: b"new" * 20})
    counter, total, version, triggers, answers = _file(path)
    assert (version, counter, total) == (SCHEMA_VERSION, 360, 360)
    assert "entries_added" not in triggers
    assert answers == {KEYS[0]: b"old" * 50, KEYS[1]: b"older" * 30, KEYS[2]: b"new" * 20}


def test_a_schema_2_process_that_opened_the_file_before_the_upgrade(tmp_path: Path) -> None:
    # It counts its answers only through the trigger the upgrade took away: the flushes of
    # this version count them.
    path = str(tmp_path / "c.db")
    old = Schema2Process(path)
    store = SQLiteStore(path, 1 << 30)
    _flush(store, {KEYS[0]: b"a" * 100})
    old.write({KEYS[1]: b"b" * 200, KEYS[0]: b"c" * 50}, 1 << 30)  # a new one, one replaced
    _flush(store, {KEYS[2]: b"d" * 10})
    counter, total, version, _, answers = _file(path)
    assert (version, counter, total) == (SCHEMA_VERSION, 260, 260)
    assert answers[KEYS[0]] == b"c" * 50


def test_a_schema_2_process_that_opens_the_file_after_the_upgrade(tmp_path: Path) -> None:
    # It puts its trigger back and sets version 2 while this version's connection is open.
    path = str(tmp_path / "c.db")
    store = SQLiteStore(path, 1 << 30)
    _flush(store, {KEYS[0]: b"a" * 100})
    old = Schema2Process(path)
    assert _file(path)[2:4] == (2, {"entries_added", "entries_removed", "entries_changed"})
    old.write({KEYS[1]: b"b" * 200}, 1 << 30)
    _flush(store, {KEYS[2]: b"c" * 10})
    counter, total, version, triggers, _ = _file(path)
    assert (version, counter, total) == (SCHEMA_VERSION, 310, 310)
    assert "entries_added" not in triggers
    old.write({KEYS[3]: b"d" * 5}, 1 << 30)  # without its trigger again
    _flush(store, {KEYS[4]: b"e"})
    assert _file(path)[:2] == (316, 316)


BOUND = 2_000


class SharedFile(RuleBasedStateMachine):
    """Schema 2 processes and this version's, taking turns on one file."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = str(Path(self.dir.name) / "c.db")
        self.store = SQLiteStore(self.path, BOUND)
        self.old: Schema2Process | None = None
        #: The last answer stored for each key, by either.
        self.last: dict[str, bytes] = {}
        self.step = 0

    def _answers(self, keys: list[str], size: int) -> dict[str, bytes]:
        self.step += 1
        answers = {k: f"{self.step}:".encode().ljust(size, b".") for k in keys}
        self.last.update(answers)
        return answers

    @rule()
    def an_old_process_starts(self) -> None:
        if self.old is not None:
            self.old.close()
        self.old = Schema2Process(self.path)

    @precondition(lambda self: self.old is not None)
    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
          size=st.integers(1, 400))  # fmt: skip
    def the_old_process_writes(self, keys: list[str], size: int) -> None:
        assert self.old is not None
        self.old.write(self._answers(keys, size), BOUND)

    @precondition(lambda self: self.old is not None)
    @rule()
    def the_old_process_clears(self) -> None:
        assert self.old is not None
        self.old.clear()
        self.last.clear()

    @rule()
    def a_new_process_starts(self) -> None:
        connect(self.path).close()  # what its first statement does to the file

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True),
          size=st.integers(1, 400))  # fmt: skip
    def this_version_writes(self, keys: list[str], size: int) -> None:
        _flush(self.store, self._answers(keys, size))
        counter, total, version, triggers, answers = _file(self.path)
        assert counter == total
        assert total <= BOUND
        assert version == SCHEMA_VERSION
        assert "entries_added" not in triggers
        for key, body in answers.items():
            assert self.last[key] == body

    @rule(everything=st.booleans())
    def this_version_clears(self, everything: bool) -> None:
        self.store.clear(None if everything else 0.0)
        self.last.clear()
        counter, total, *_ = _file(self.path)
        assert counter == total == 0

    def teardown(self) -> None:
        if self.old is not None:
            self.old.close()
        self.dir.cleanup()


TestSharedFile = SharedFile.TestCase
TestSharedFile.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
