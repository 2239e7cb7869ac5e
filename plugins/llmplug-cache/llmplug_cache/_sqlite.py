"""The SQLite store: one file, shared by every process on the machine (WAL: readers never wait
for a writer). Every statement runs on one worker thread per file and process, never on an event
loop; writes are not waited for (the worker runs them in order, so a read after a write sees
it). The bodies' total is bounded by ``max_bytes``: past it, the least recently used answers
are deleted (down to 90 %, so eviction is not paid on every write)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["SQLiteStore", "Stats"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL,
    expires REAL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('hits', 0), ('misses', 0), ('bytes', 0), ('saved', 0);
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS entries_changed AFTER UPDATE OF size ON entries BEGIN
    UPDATE counters SET value = value + NEW.size - OLD.size WHERE name = 'bytes';
END;
"""


class Stats(dict[str, Any]):
    """``entries``, ``bytes`` (the answers'), ``file_bytes``, ``hits``, ``misses``,
    ``hit_rate``, ``saved`` (money)."""


def connect(path: str, busy_timeout: float = 2.0) -> sqlite3.Connection:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last answers: fine
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


class SQLiteStore:
    kind = "sqlite"
    can_lock = False

    def __init__(self, path: str, max_bytes: int, busy_timeout: float = 2.0) -> None:
        self.path = os.path.expanduser(path)
        self.where = self.path
        self.max_bytes = max_bytes
        self.busy_timeout = busy_timeout
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="llmplug-cache")
        self._db: sqlite3.Connection | None = None  # the worker thread's only
        #: Told (from the worker thread) how each write ended: the cache's warn-once.
        self.on_write: Callable[[BaseException | None], None] = lambda _: None

    # -- on the worker thread --------------------------------------------------------------------

    def _run(self, op: Callable[..., T], *args: Any) -> T:
        if self._db is None:
            self._db = connect(self.path, self.busy_timeout)
        try:
            return op(self._db, *args)
        except sqlite3.Error:
            # A damaged or replaced file: the next statement opens it again (a file truncated
            # to nothing becomes a new, empty cache).
            db, self._db = self._db, None
            with contextlib.suppress(sqlite3.Error):
                db.close()
            raise

    def _write(self, op: Callable[..., None], *args: Any) -> None:
        try:
            self._run(op, *args)
        except Exception as exc:
            self.on_write(exc)
        else:
            self.on_write(None)

    # -- from the event loop ---------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self._run, _get, key, time.time())

    async def put(self, key: str, body: bytes, ttl: float | None) -> None:
        now = time.time()
        expires = None if ttl is None else now + ttl
        self._submit(_put, key, body, now, expires, self.max_bytes)

    def touch(self, key: str, saved: float | None) -> None:
        self._submit(_touch, key, time.time(), saved or 0.0)

    def _submit(self, op: Callable[..., None], *args: Any) -> None:
        try:
            fut: Future[None] = self._worker.submit(self._write, op, *args)
        except RuntimeError:  # the interpreter is shutting down: nothing more is kept
            return
        del fut

    # -- the CLI (its own connection, on its own thread) -------------------------------------------

    def stats(self) -> Stats:
        db = connect(self.path)
        try:
            return _stats(db, self.path)
        finally:
            db.close()

    def clear(self, older_than: float | None = None) -> int:
        db = connect(self.path)
        try:
            return _clear(db, older_than)
        finally:
            db.close()


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _get(db: sqlite3.Connection, key: str, now: float) -> bytes | None:
    row = db.execute(
        "SELECT body FROM entries WHERE key = ? AND (expires IS NULL OR expires > ?)", (key, now)
    ).fetchone()
    return None if row is None else bytes(row[0])


def _put(
    db: sqlite3.Connection,
    key: str,
    body: bytes,
    now: float,
    expires: float | None,
    max_bytes: int,
) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "INSERT INTO entries (key, body, size, created, used, expires) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET body = excluded.body, "
            "size = excluded.size, created = excluded.created, used = excluded.used, "
            "expires = excluded.expires, hits = 0",
            (key, body, len(body), now, now, expires),
        )
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'misses'")
        (total,) = db.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        if total > max_bytes:
            _evict(db, now, total - int(max_bytes * 0.9))
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _evict(db: sqlite3.Connection, now: float, excess: float) -> None:
    """Delete the expired answers, then the least recently used until ``excess`` bytes went."""
    gone = db.execute(
        "DELETE FROM entries WHERE expires IS NOT NULL AND expires <= ? RETURNING size", (now,)
    ).fetchall()
    excess -= sum(size for (size,) in gone)
    if excess <= 0:
        return
    db.execute(
        "DELETE FROM entries WHERE id IN (SELECT id FROM (SELECT id, size, "
        "SUM(size) OVER (ORDER BY used, id) AS running FROM entries) WHERE running - size < ?)",
        (excess,),
    )


def _touch(db: sqlite3.Connection, key: str, now: float, saved: float) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("UPDATE entries SET used = ?, hits = hits + 1 WHERE key = ?", (now, key))
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'hits'")
        if saved:
            db.execute("UPDATE counters SET value = value + ? WHERE name = 'saved'", (saved,))
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _stats(db: sqlite3.Connection, path: str) -> Stats:
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    (entries,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
    hits, misses = int(counters["hits"]), int(counters["misses"])
    file_bytes = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return Stats(
        entries=entries,
        bytes=int(counters["bytes"]),
        file_bytes=file_bytes,
        hits=hits,
        misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        saved=counters["saved"],
    )


def _clear(db: sqlite3.Connection, older_than: float | None) -> int:
    db.execute("BEGIN IMMEDIATE")
    try:
        if older_than is None:
            (n,) = db.execute("SELECT COUNT(*) FROM entries").fetchone()
            db.execute("DELETE FROM entries")
            db.execute("UPDATE counters SET value = 0")
        else:
            n = db.execute(
                "DELETE FROM entries WHERE created < ?", (time.time() - older_than,)
            ).rowcount
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
    if older_than is None:
        db.execute("VACUUM")  # give the space back
    return int(n)
