"""The SQLite store: one file, shared by every process on the machine (WAL: readers never wait
for a writer). Every statement runs on a thread of the store's, never on an event loop; writes
are not waited for, and are written together (see ``SQLiteStore``). The bodies' total is
bounded by ``max_bytes``: past it, the least recently used answers are deleted (down to 90 %,
so eviction is not paid on every write)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


class _Conn:
    """One connection, opened when first needed and dropped after an error: a damaged or
    replaced file is opened again by the next statement (a file truncated to nothing becomes a
    new, empty cache)."""

    __slots__ = ("busy_timeout", "db", "path")

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.db: sqlite3.Connection | None = None

    def run(self, op: Callable[..., T], *args: Any) -> T:
        if self.db is None:
            self.db = connect(self.path, self.busy_timeout)
        try:
            return op(self.db, *args)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorname", "").startswith(_PASSING):
                raise  # the file is fine: the next statement may well succeed on it
            db, self.db = self.db, None
            with contextlib.suppress(sqlite3.Error):
                db.close()
            raise


#: Errors that say nothing about the file itself (another process's lock, a full disk): the
#: connection is kept. Any other error drops it, and the next statement opens the file again.
_PASSING = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL")


#: The longest a read waits for the file (see SQLiteStore).
READ_TIMEOUT = 0.1

#: How long the writer gathers answers before it writes them, in one transaction: a write per
#: answer would cost a miss more CPU than the rest of the call's client side together.
FLUSH_EVERY = 0.2


#: How often, at most, the keys other processes stored are looked up: an answer another process
#: stored this recently may be asked of the provider once more.
REFRESH_EVERY = 0.2
#: Past this many answers, the keys are not kept in memory (8 bytes and a set slot each) and
#: every read asks the file.
MAX_KNOWN = 1_000_000


def _short(key: str) -> int:
    return int(key[-16:], 16)  # (a group's key starts with "g")


class SQLiteStore:
    """Reads run on a reader thread, and only for keys the file is known to hold (a miss is
    answered on the loop, from the keys' set); writes are gathered for ``FLUSH_EVERY`` and
    written by a writer thread in one transaction. An answer waiting to be written is already
    served to this process's reads; whatever is waiting when the process exits is written
    first."""

    kind = "sqlite"
    can_lock = False

    def __init__(self, path: str, max_bytes: int, busy_timeout: float = 2.0) -> None:
        self.path = os.path.expanduser(path)
        self.where = self.path
        self.max_bytes = max_bytes
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="llmplug-cache-read")
        # A read in WAL mode waits for nobody, unless the file is in trouble: it then gives up
        # soon (a miss) rather than hold the call for the writers' busy_timeout.
        self._rconn = _Conn(self.path, min(busy_timeout, READ_TIMEOUT))  # the reader thread's
        self._wconn = _Conn(self.path, busy_timeout)  # the flushing thread's only
        self._cond = threading.Condition()
        #: key -> (body, stored at, expires): answers not yet written.
        self._pending: dict[str, tuple[bytes, float, float | None]] = {}
        #: key -> (last used, hits, money saved): hits not yet counted.
        self._touched: dict[str, tuple[float, int, float]] = {}
        self._flushing = threading.Lock()
        self._writer: threading.Thread | None = None
        #: The first 64 bits of every key the file held at the last look (and of this
        #: process's since), so that a miss needs no trip off the loop; None: not known (not
        #: looked yet, a failed look, or more than MAX_KNOWN), and every read asks the file.
        self._known: set[int] | None = None
        self._seen = 0  # the largest row id looked at
        self._refreshed = -REFRESH_EVERY
        self._refreshing = False
        #: Told (from the writer thread) how each write ended: the cache's warn-once.
        self.on_write: Callable[[BaseException | None], None] = lambda _: None

    # -- from the event loop ---------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        waiting = self._pending.get(key)
        if waiting is not None and (waiting[2] is None or waiting[2] > time.time()):
            return waiting[0]
        known = self._known
        if known is not None and _short(key) not in known:
            # A miss, known without leaving the loop: a trip to the reader thread costs more
            # CPU (waking it, handing over the GIL) than the rest of a miss together.
            self._refresh_soon()
            return None
        if known is None:
            self._refresh_soon()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._rconn.run, _get, key, time.time())

    async def put(self, key: str, body: bytes, ttl: float | None) -> None:
        now = time.time()
        with self._cond:
            self._pending[key] = (body, now, None if ttl is None else now + ttl)
            self._wake()
        known = self._known
        if known is not None:
            known.add(_short(key))

    # -- which keys the file holds ---------------------------------------------------------------

    def _refresh_soon(self) -> None:
        now = time.monotonic()
        if self._refreshing or now - self._refreshed < REFRESH_EVERY:
            return
        self._refreshing = True
        self._refreshed = now
        try:
            self._reader.submit(self._refresh)
        except RuntimeError:  # shutting down
            self._refreshing = False

    def _refresh(self) -> None:
        """On the reader thread: add the keys other processes (and this one) stored since the
        last look. Deleted keys stay: a read then finds nothing, which is a miss all the same."""
        try:
            rows = self._rconn.run(_keys_after, self._seen)
            known = self._known if self._known is not None else set()
            known.update(short for _, short in rows)
            if rows:
                self._seen = max(self._seen, rows[-1][0])
            self._known = known if len(known) <= MAX_KNOWN else None
            if self._known is None:
                self._seen = 0
        except Exception:
            self._known, self._seen = None, 0  # every read asks the file until a look succeeds
        finally:
            self._refreshing = False

    def touch(self, key: str, saved: float | None) -> None:
        with self._cond:
            _, hits, total = self._touched.get(key, (0.0, 0, 0.0))
            self._touched[key] = (time.time(), hits + 1, total + (saved or 0.0))
            self._wake()

    def _wake(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_loop, name="llmplug-cache-write", daemon=True
            )
            self._writer.start()
            atexit.register(self.flush)
        self._cond.notify()

    # -- the writer ------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._touched):
                    self._cond.wait()
            time.sleep(FLUSH_EVERY)  # gather what comes meanwhile: one transaction for all
            self.flush()

    def flush(self) -> None:
        """Write what is waiting, now."""
        with self._flushing:
            with self._cond:
                pending, self._pending = self._pending, {}
                touched, self._touched = self._touched, {}
            if not (pending or touched):
                return
            try:
                self._wconn.run(_write, pending, touched, self.max_bytes)
            except Exception as exc:
                self.on_write(exc)
            else:
                self.on_write(None)

    # -- the CLI (its own connection) ------------------------------------------------------------

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


def _keys_after(db: sqlite3.Connection, seen: int) -> list[tuple[int, int]]:
    return [
        (row_id, _short(key))
        for row_id, key in db.execute(
            "SELECT id, key FROM entries WHERE id > ? ORDER BY id", (seen,)
        ).fetchall()
    ]


def _write(
    db: sqlite3.Connection,
    pending: dict[str, tuple[bytes, float, float | None]],
    touched: dict[str, tuple[float, int, float]],
    max_bytes: int,
) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(
            "INSERT INTO entries (key, body, size, created, used, expires) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET body = excluded.body, "
            "size = excluded.size, created = excluded.created, used = excluded.used, "
            "expires = excluded.expires, hits = 0",
            [(k, body, len(body), now, now, exp) for k, (body, now, exp) in pending.items()],
        )
        db.executemany(
            "UPDATE entries SET used = ?, hits = hits + ? WHERE key = ?",
            [(used, hits, k) for k, (used, hits, _) in touched.items()],
        )
        hits = sum(h for _, h, _ in touched.values())
        saved = sum(s for _, _, s in touched.values())
        db.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            [(len(pending), "misses"), (hits, "hits"), (saved, "saved")],
        )
        (total,) = db.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        if total > max_bytes:
            _evict(db, time.time(), total - int(max_bytes * 0.9))
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
