"""The SQLite store: one file, shared by every process on the machine (WAL: readers never wait
for a writer). Every statement runs on a thread of the store's, never on an event loop; writes
are not waited for, and are written together (see ``SQLiteStore``). The bodies' total is
bounded by ``max_bytes``: past it, the least recently used answers are deleted (down to 90 %,
so eviction is not paid on every write)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import enum
import functools
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import msgspec

from ._entry import Body

__all__ = ["ASK", "Ask", "Keyer", "SQLiteStore", "Stats"]


class Ask(enum.Enum):
    """What ``SQLiteStore.peek`` says when only the file knows."""

    ASK = "ask"


ASK = Ask.ASK

T = TypeVar("T")

#: The tables, made when missing. An answer's row is found by ``kh``, the last 64 bits of its
#: key (an integer index is a fifth of a text one's size: each answer written touches a
#: random index page, and the index's pages are most of what a write costs); ``key`` is
#: checked too, so two keys sharing those bits never answer for each other.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY,
        kh INTEGER NOT NULL UNIQUE,
        key TEXT NOT NULL,
        body BLOB NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        used REAL NOT NULL,
        expires REAL,
        hits INTEGER NOT NULL DEFAULT 0,
        hint INTEGER
    )""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL)",
    """INSERT OR IGNORE INTO counters VALUES
        ('hits', 0), ('misses', 0), ('bytes', 0), ('saved', 0), ('ids', 0), ('counted', 0)""",
)
#: The bytes counter. A new answer's size is added by the writer that stored it, in the same
#: transaction, for all the rows after ``counted`` (the largest row id already in ``bytes``):
#: one range scan per flush. Schema 2 had a trigger per row inserted instead, 30 % of what
#: writing an answer cost. A deleted or resized row is counted by these triggers, if it was
#: counted at all: a row a schema 2 process stored without its trigger (see ``_migrate``) is
#: counted later, by the next scan, at its size then.
_TRIGGERS = (
    """CREATE TRIGGER entries_removed AFTER DELETE ON entries
    WHEN OLD.id <= (SELECT value FROM counters WHERE name = 'counted') BEGIN
        UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
    END""",
    """CREATE TRIGGER entries_changed AFTER UPDATE OF size ON entries
    WHEN OLD.id <= (SELECT value FROM counters WHERE name = 'counted') BEGIN
        UPDATE counters SET value = value + NEW.size - OLD.size WHERE name = 'bytes';
    END""",
)
#: Bumped with each change of the schema (``PRAGMA user_version``; version 1, the first
#: one's, never set it). Not for ``hint`` (see ``SQLiteStore``): a column added in place
#: (``_with_hints``), NULL in the rows of processes that do not know it, which go on sharing
#: the file. A new version would have each process of the two make the file its own again at
#: each of its flushes, counting the whole file each time (see ``_migrate``).
SCHEMA_VERSION = 3


def _wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Put the file in WAL mode. Doing so takes a lock that SQLite does not wait for: another
    connection (another thread's, another process's) making the same new file at the same
    moment got "database is locked" at once. So it is waited for here, up to busy_timeout."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY")
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # (a store's own thread, or the CLI: never an event loop)
        pause = min(pause * 2, 0.05)


def _prepare(db: sqlite3.Connection) -> None:
    """Make the tables, or bring an earlier version's to this version, keeping its answers."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:  # (not meanwhile)
            _migrate(db)
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the file to this version, in the caller's transaction. A schema 2 process does the
    reverse whenever it opens a file of another version: it puts its insert trigger back and
    sets version 2. Each writer of this version looks at the version in each flush, and comes
    back here: after that, the count is right again (see _TRIGGERS)."""
    columns = _columns(db)
    if columns and "kh" not in columns:
        _from_version_1(db)
    for name in ("entries_added", "entries_removed", "entries_changed"):
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in (*_TABLES, *_TRIGGERS):
        db.execute(statement)
    # Counted again from the rows (a read of the whole table, once per version change): while
    # the schema 2 trigger was back, rows came in counted already, and rows before it maybe not.
    db.execute(
        "UPDATE counters SET value = CASE name WHEN 'bytes' THEN (SELECT total(size) FROM "
        "entries) ELSE (SELECT ifnull(max(id), 0) FROM entries) END "
        "WHERE name IN ('bytes', 'counted')"
    )
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _from_version_1(db: sqlite3.Connection) -> None:
    # Version 1: a unique text index on key, an index on used (which only eviction, a rare
    # sort, needed). Its triggers go with its table.
    db.create_function("llmplug_short", 1, _short, deterministic=True)
    db.execute("ALTER TABLE entries RENAME TO entries_v1")
    db.execute(_TABLES[0])
    db.execute(
        "INSERT OR IGNORE INTO entries (id, kh, key, body, size, created, used, expires, hits) "
        "SELECT id, llmplug_short(key), key, body, size, created, used, expires, hits "
        "FROM entries_v1 WHERE length(key) >= 16"
    )
    db.execute("DROP TABLE entries_v1")


def _with_hints(db: sqlite3.Connection) -> None:
    """Add the ``hint`` column to a file made before it (no row is rewritten)."""
    if "hint" in _columns(db):
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if "hint" not in _columns(db):  # (not meanwhile)
            db.execute("ALTER TABLE entries ADD COLUMN hint INTEGER")
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _columns(db: sqlite3.Connection) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(entries)")}


class Stats(dict[str, Any]):
    """``entries``, ``bytes`` (the answers'), ``file_bytes``, ``hits``, ``misses``,
    ``hit_rate``, ``saved`` (money)."""


def connect(
    path: str, busy_timeout: float = 2.0, read_timeout: float | None = None
) -> sqlite3.Connection:
    """A connection to the file, made ready (WAL, the schema). ``read_timeout``: how long its
    statements then wait for the file, if not ``busy_timeout`` (which making it ready may need,
    when another process is making it ready too)."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        # A new file's pages (a file's size of page is set when it is made, and kept): each
        # page is a write of its own to the WAL and again to the file, and at 4 KiB writing
        # an answer cost the writer thread 5.7 µs of CPU, at 16 KiB 4.7 (in a loop of
        # 2,000-answer flushes). A file made with other pages keeps them, and works as well.
        db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        _wal(db, busy_timeout)
        db.execute("PRAGMA synchronous=NORMAL")  # a power cut may lose the last answers: fine
        # Only when needed: making the tables writes, and a write waits for the writers.
        if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _prepare(db)
        _with_hints(db)
        if read_timeout is not None:
            db.execute(f"PRAGMA busy_timeout = {int(read_timeout * 1000)}")
    except BaseException:
        db.close()
        raise
    return db


class _Conn:
    """One connection, opened when first needed and dropped after an error: a damaged or
    replaced file is opened again by the next statement (a file truncated to nothing becomes a
    new, empty cache). ``opened`` counts the connections made, so that what one connection
    said (its ``data_version``) is never compared with another's."""

    __slots__ = ("busy_timeout", "db", "opened", "path", "read_timeout")

    def __init__(self, path: str, busy_timeout: float, read_timeout: float | None = None) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.read_timeout = read_timeout
        self.db: sqlite3.Connection | None = None
        self.opened = 0

    def run(self, op: Callable[..., T], *args: Any) -> T:
        if self.db is None:
            self.db = connect(self.path, self.busy_timeout, self.read_timeout)
            self.opened += 1
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


#: The size of a new file's pages (see connect).
PAGE_SIZE = 16384

#: The longest a read waits for the file (see SQLiteStore).
READ_TIMEOUT = 0.1

#: How long the writer gathers answers before it writes them, in one transaction. A write costs
#: the writer thread more per answer the fewer answers a flush holds (waking up, the file's
#: locks and its first pages again): at 0.2 s, 9 us of CPU per answer at 1,700 calls a second;
#: at 1 s, 5 us, one call at a time or 64 in flight (the provider on other CPUs). Another
#: process learns an answer this much later.
FLUSH_EVERY = 1.0
#: ... or until this many answers wait, which bounds the memory they hold.
MAX_WAITING = 4096

#: While the keys the file holds are not known (not looked yet, or the last look failed), how
#: often at most a read asks for a look. Once known, they are looked up after each flush: an
#: answer another process stored since this process's last flush may be asked of the provider
#: once more.
REFRESH_EVERY = 0.2
#: Past this many answers, the keys are not kept in memory (an int and a set slot each) and
#: every read asks the file.
MAX_KNOWN = 1_000_000
#: The most keys one statement of a look reads (see _keys_after).
LOOK_ROWS = 50_000


class Keyer(Protocol):
    """What makes the key of an answer kept without one (``SQLiteStore.keep_unkeyed``), from
    the question it was given with it."""

    def key_of(self, question: Any) -> str | None: ...


class _Waiting(msgspec.Struct, array_like=True, gc=False):
    """An answer waiting to be written. Not a tuple: a tuple is tracked by the garbage collector
    when made, so each answer held until the next flush counted towards a collection (one per
    700 misses), where a call without a cache leaves the collector nothing to do."""

    body: Body  # (made bytes on the writer thread)
    stored: float
    expires: float | None
    hint: int | None
    #: None until made: by ``keyer.key_of(question)``, on the writer thread (or by a read that
    #: needs it first).
    key: str | None
    keyer: Keyer | None = None
    question: Any = None

    def made_key(self) -> str | None:
        """The key, made now if need be (None: it cannot be: the answer is not stored). It
        holds its keyer (the cache, its interface) until the flush: a cycle through the store,
        which an untracked record hides from the garbage collector, and which the flush
        breaks."""
        key = self.key
        if key is None and self.keyer is not None:
            try:
                key = self.key = self.keyer.key_of(self.question)
            except Exception:  # (a wire that refuses the call: the answer is not stored)
                self.keyer = None
                return None
        return key


_Hinted = _Waiting | list[_Waiting]


def _short(key: str) -> int:
    """The last 64 bits of ``key`` as SQLite's signed integer (a group's key starts with "g")."""
    return int(key[-16:], 16) - (1 << 63)


class SQLiteStore:
    """Reads run on a reader thread, and only for keys the file is known to hold (a miss is
    answered on the loop, from the keys' set); writes are gathered for ``FLUSH_EVERY`` and
    written by a writer thread in one transaction, which also learns the keys other processes
    stored. An answer waiting to be written is already served to this process's reads;
    whatever is waiting when the process exits is written first.

    Every hand-over between the loop's thread and these threads costs the process far more CPU
    than the work handed over (waking a thread, passing the GIL back and forth), so there are
    few: no trip for a miss, a few statements for all the answers of a flush, one row for all the
    keys of a look, and no look at all while no other process wrote.

    Each answer is stored with its question's **hint** (the cache's ``hint_of``: a checksum of
    a few of the call's parts, which every call asking the same question shares), and the
    hints the file holds are known as its keys are (``hints``; ``hinted`` and
    ``writing_hinted`` hold the answers waiting and being written, by hint: an answer goes from
    one to the next, and the cache, which reads them without the lock, reads them in that
    order). A call whose hint none of them has is a miss without its key: its answer is kept
    without one (``keep_unkeyed``), and the writer thread makes the key when it writes, with the
    other answers of the flush. A key is the request the wire builds, and making it inside a
    call cost that call four times what it costs in a batch: code that runs once per call runs
    cold."""

    kind = "sqlite"
    can_lock = False

    def __init__(self, path: str, max_bytes: int, busy_timeout: float = 2.0) -> None:
        self.path = os.path.expanduser(path)
        self.where = self.path
        self.max_bytes = max_bytes
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="llmplug-cache-read")
        # A read in WAL mode waits for nobody, unless the file is in trouble: it then gives up
        # soon (a miss) rather than hold the call for the writers' busy_timeout. The reader
        # thread's connection:
        self._rconn = _Conn(self.path, busy_timeout, min(busy_timeout, READ_TIMEOUT))
        self._wconn = _Conn(self.path, busy_timeout)  # the writer thread's (and flush()'s)
        self._lock = threading.Lock()  # what waits (_pending, hinted, _touched)
        #: Set when the writer has something to do; a plain flag read first, so that a put
        #: pays for setting it (a Condition's notify) once per flush, not once per answer.
        self._work = threading.Event()
        self._woken = False  # whether _work was set since the writer last cleared it
        self._full = threading.Event()  # MAX_WAITING answers wait: write them now
        #: The answers not yet written, and those being written: by hint, every one (its key
        #: perhaps not made yet; one answer, or a list when a hint has several), and by key,
        #: those kept with theirs.
        self.hinted: dict[int | None, _Hinted] = {}
        self._pending: dict[str, _Waiting] = {}
        self.writing_hinted: dict[int | None, _Hinted] = {}
        self._writing: dict[str, _Waiting] = {}
        #: By hint, how many of its answers are filed by key in _pending (_writing), their
        #: keys made (see _index).
        self._indexed: dict[int | None, int] = {}
        self._writing_indexed: dict[int | None, int] = {}
        self._waiting = 0  # how many answers hinted holds
        #: key -> (last used, hits, money saved): hits not yet counted.
        self._touched: dict[str, tuple[float, int, float]] = {}
        self._wlock = threading.Lock()  # the writer connection's: one statement at a time
        self._writer: threading.Thread | None = None
        #: The ``hash()`` of every key the file held at the last look (and of this process's
        #: since), so that a miss needs no trip off the loop; None: not known (not looked yet,
        #: a failed look, or more than MAX_KNOWN), and every read asks the file. Python's own
        #: hash of the key, not its last 64 bits (the file's ``kh``): a str caches its hash,
        #: which the lookups of the key before this one computed, where converting the key's
        #: hex cost a miss a microsecond inside whole calls. (It is this process's: keys read
        #: from the file are hashed here.) Two keys sharing a hash only make a read ask.
        self._known: set[int] | None = None
        #: The hints of the same answers, known with the keys (None with them); None too once
        #: the file has shown a row without one (an earlier version's): a hint then tells
        #: nothing, and every call makes its key.
        self.hints: set[int] | None = None
        self._unhinted = False
        self._seen = 0  # the largest row id looked at
        #: (connection, its data_version) at the last look: unchanged, no other process wrote.
        self._version: tuple[int, int] | None = None
        self._looked = -REFRESH_EVERY
        self._look_wanted = False
        #: Told (from the writer thread) how each write ended: the cache's warn-once.
        self.on_write: Callable[[BaseException | None], None] = lambda _: None

    # -- from the event loop ---------------------------------------------------------------------

    def peek(self, key: str, hint: int | None = None) -> Body | Ask | None:
        """What a read can tell without leaving the loop: an answer waiting to be written, None
        for a key the file is known not to hold, else ``ASK`` (``read`` reads the file)."""
        if hint is not None and (hint in self.hinted or hint in self.writing_hinted):
            self._index(hint)  # (a question asked again before its answer was written)
        waiting = self._pending.get(key) or self._writing.get(key)
        if waiting is not None and (waiting.expires is None or waiting.expires > time.time()):
            return waiting.body
        known = self._known
        if known is None:
            self._look_soon()
            return ASK
        # A miss, known without leaving the loop: a trip to the reader thread costs more CPU
        # (waking it, handing over the GIL) than the rest of a miss together. The keys other
        # processes stored are learned after each flush (see _write_loop).
        return ASK if hash(key) in known else None

    def _index(self, hint: int) -> None:
        """File by key the waiting answers with ``hint`` not filed yet, their keys made now
        (those kept without one), each answer once: a lookup then costs the same however many
        answers share a hint. Of two answers to one key, the later is filed."""
        for hinted, by_key, indexed in (
            (self.writing_hinted, self._writing, self._writing_indexed),
            (self.hinted, self._pending, self._indexed),
        ):
            answers = _each(hinted.get(hint))
            done = indexed.get(hint, 0)
            if done >= len(answers):
                continue
            fresh = answers[done:]
            for waiting in fresh:
                waiting.made_key()  # (a wire's build: not under the lock)
            with self._lock:
                for waiting in fresh:
                    key = waiting.key
                    if key is not None:
                        other = by_key.get(key)
                        if other is None or other.stored <= waiting.stored:
                            by_key[key] = waiting
                indexed[hint] = max(indexed.get(hint, 0), done + len(fresh))

    async def get(self, key: str) -> bytes | None:
        body = self.peek(key)
        if body is ASK:
            return await self.read(key)
        return None if body is None else bytes(body)

    async def read(self, key: str) -> bytes | None:
        """The file's answer for ``key``, read on the reader thread (after ``peek`` said ASK)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader, self._rconn.run, _get, key, time.time())

    async def put(self, key: str, body: bytes, ttl: float | None) -> None:
        self.keep(key, body, ttl)

    def keep(self, key: str, body: Body, ttl: float | None, hint: int | None = None) -> None:
        """``put`` without a coroutine: the answer waits for the writer thread, which makes its
        bytes, writes it and adds its key to the known keys (until then ``peek`` finds it
        waiting)."""
        now = time.time()
        self._hold(_Waiting(body, now, None if ttl is None else now + ttl, hint, key), key)

    def keep_unkeyed(
        self, hint: int, keyer: Keyer, question: Any, body: Body, ttl: float | None
    ) -> None:
        """Keep an answer whose question has ``hint`` without its key: the writer thread makes
        it (``keyer.key_of(question)``) when it writes the answer, and stores nothing if that
        fails."""
        now = time.time()
        expires = None if ttl is None else now + ttl
        self._hold(_Waiting(body, now, expires, hint, None, keyer, question), None)

    def _hold(self, waiting: _Waiting, key: str | None) -> None:
        with self._lock:
            if key is not None:
                self._pending[key] = waiting
            # (Most hints have one answer: no list for it, which the garbage collector would
            # track until the flush.)
            had = self.hinted.get(waiting.hint)
            if had is None:
                self.hinted[waiting.hint] = waiting
            elif isinstance(had, list):
                had.append(waiting)
            else:
                self.hinted[waiting.hint] = [had, waiting]
            self._waiting += 1
            full = self._waiting >= MAX_WAITING
        if full:
            self._full.set()
        if not self._woken:
            self._wake()

    def touch(self, key: str, saved: float | None) -> None:
        with self._lock:
            _, hits, total = self._touched.get(key, (0.0, 0, 0.0))
            self._touched[key] = (time.time(), hits + 1, total + (saved or 0.0))
        if not self._woken:  # (a plain attribute: Event.is_set is a call)
            self._wake()

    def _look_soon(self) -> None:
        now = time.monotonic()
        if self._look_wanted or now - self._looked < REFRESH_EVERY:
            return
        self._looked = now
        self._look_wanted = True
        if not self._woken:
            self._wake()

    def _wake(self) -> None:
        if self._writer is None:
            with self._lock:
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="llmplug-cache-write", daemon=True
                    )
                    self._writer.start()
                    atexit.register(self.flush)
        self._woken = True
        self._work.set()

    # -- the writer thread -----------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            self._work.wait()
            # Cleared before anything is taken: whatever comes after sets it again.
            self._work.clear()
            self._woken = False
            if self.hinted or self._touched:
                # Gather what comes meanwhile (one transaction for all), until enough waits.
                self._full.wait(FLUSH_EVERY)
                self._full.clear()
                self.flush()
                # A process that is asking learns what the others stored: at most one look per
                # flush, nothing read while no other process wrote.
                self._look_wanted = True
            if self._look_wanted:
                self._look_wanted = False
                self._look()

    def flush(self) -> None:
        """Write what is waiting, now."""
        with self._wlock:
            with self._lock:
                # Being written before it is not waiting: ``peek`` (which takes no lock) finds
                # an answer in one or the other all along.
                self._writing, self.writing_hinted = self._pending, self.hinted
                self._writing_indexed = self._indexed
                hinted = self.hinted
                self._pending, self.hinted, self._indexed, self._waiting = {}, {}, {}, 0
                touched, self._touched = self._touched, {}
            try:
                if not (hinted or touched):
                    return
                batch = _keyed(hinted)
                try:
                    self._wconn.run(_write, batch, touched, self.max_bytes)
                except Exception as exc:
                    self.on_write(exc)
                    return
                # Known before they stop being waiting ones: a miss is never told of a key
                # that is in the file. (Learned here, not when kept: on the loop's thread each
                # answer cost a set insertion, and a write that fails leaves no key known that
                # the file does not hold.)
                known, hints = self._known, self.hints
                if known is not None:
                    known.update(map(hash, batch))
                    if hints is not None:
                        hints.update(w.hint for w in batch.values() if w.hint is not None)
                    self._keep_known(known, hints)
                self.on_write(None)
            finally:
                self._writing, self.writing_hinted, self._writing_indexed = {}, {}, {}

    def sync(self) -> None:
        """Write what is waiting and learn what other processes stored, now (as the writer
        thread does on its own every moment). Blocks: not for an event loop."""
        self.flush()
        self._look()

    def _look(self) -> None:
        """Add the keys other processes stored since the last look. Deleted keys stay: a read
        then finds nothing, which is a miss all the same."""
        with self._wlock:
            self._look_locked()

    def _look_locked(self) -> None:
        conn = self._wconn
        try:
            version = conn.run(_data_version)
            if self._known is not None and self._version == (conn.opened, version):
                return  # no other connection wrote: this process's own keys are known already
            known = self._known if self._known is not None else set()
            hints = self.hints if self._known is not None else set()
            while True:
                seen, keys, found, unhinted = conn.run(_keys_after, self._seen)
                known.update(map(hash, keys))
                self._unhinted = self._unhinted or unhinted > 0
                if hints is not None:
                    hints.update(found)
                self._seen = max(self._seen, seen)
                if len(keys) < LOOK_ROWS:
                    break
            self._version = (conn.opened, version)
            self._keep_known(known, hints)
        except Exception:
            # Every read asks the file until a look succeeds.
            self._known, self.hints, self._seen, self._version = None, None, 0, None

    def _keep_known(self, known: set[int], hints: set[int] | None) -> None:
        """``known`` as the keys the file holds, and ``hints`` as their hints, unless they are
        more than ``MAX_KNOWN``: then none are known, and every read asks the file until a look
        learns them all again."""
        if len(known) <= MAX_KNOWN:
            self._known = known
            self.hints = None if self._unhinted else hints
        else:
            self._known, self.hints, self._seen, self._version = None, None, 0, None

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
        "SELECT body FROM entries WHERE kh = ? AND key = ? AND (expires IS NULL OR expires > ?)",
        (_short(key), key, now),
    ).fetchone()
    return None if row is None else bytes(row[0])


def _data_version(db: sqlite3.Connection) -> int:
    (version,) = db.execute("PRAGMA data_version").fetchone()
    return int(version)


def _keys_after(db: sqlite3.Connection, seen: int) -> tuple[int, list[str], list[int], int]:
    """The keys and hints of the first ``LOOK_ROWS`` answers stored after ``seen``, the largest
    row id among them, and how many have no hint: one row for all of them (each row fetched
    hands the GIL over twice), and at most LOOK_ROWS keys' text in memory at once."""
    top, keys, hints, unhinted = db.execute(
        "SELECT max(id), group_concat(key), group_concat(hint), count(*) - count(hint) "
        "FROM (SELECT id, key, hint FROM entries WHERE id > ? ORDER BY id LIMIT ?)",
        (seen, LOOK_ROWS),
    ).fetchone()
    return (
        (top or seen),
        (keys.split(",") if keys else []),
        ([int(h) for h in hints.split(",")] if hints else []),
        unhinted,
    )


#: The sizes of the INSERTs a flush's answers go in (see _chunks).
_SIZES = (64, 16, 4, 1)


def _chunks(n: int) -> list[tuple[int, int]]:
    """(start, size) of the INSERTs that store ``n`` answers: as many of 64 rows as fit, then at
    most three of each smaller size. A statement of a new size each flush was parsed and
    compiled each time, which was most of what the writer thread spent per answer; these four
    stay prepared (in the connection's statement cache). Compiling costs SQLite some 27 k
    instructions per row of a statement, paid once per connection: 85 rows for these four, where
    the powers of two up to 512 were 1023 (7 ms of a short-lived process's CPU)."""
    out = []
    at = 0
    for size in _SIZES:
        while n - at >= size:
            out.append((at, size))
            at += size
    return out


_COLUMNS = 9  # an answer's values in _insert


@functools.cache  # one per size in _SIZES
def _insert(rows: int) -> str:
    # ``expires`` comes as 0 for none, ``hint`` as -1 (a hint is a CRC-32, never negative): a
    # None (and a bytes body, bound as a bytearray) is sent through sqlite3's adapter lookup,
    # whose failed attribute look-ups format an exception each: 6.7 k instructions per answer
    # written, a fifth of the write.
    return (
        "INSERT INTO entries (id, kh, key, body, size, created, used, expires, hint) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, nullif(?, 0), nullif(?, -1))"] * rows)
        + " ON CONFLICT (kh) DO UPDATE SET key = excluded.key, body = excluded.body, "
        "size = excluded.size, created = excluded.created, used = excluded.used, "
        "expires = excluded.expires, hint = excluded.hint, hits = 0"
    )


def _write(
    db: sqlite3.Connection,
    pending: dict[str, _Waiting],
    touched: dict[str, tuple[float, int, float]],
    max_bytes: int,
) -> None:
    """Store ``pending`` and count ``touched``, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version, top, ids, counted = db.execute(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT max(id) FROM "
            "entries), (SELECT value FROM counters WHERE name = 'ids'), (SELECT value FROM "
            "counters WHERE name = 'counted')"
        ).fetchone()
        if version != SCHEMA_VERSION:
            _migrate(db)  # a process of schema 2 opened the file since the last flush
            (counted,) = db.execute("SELECT value FROM counters WHERE name = 'counted'").fetchone()
        if pending:
            # Row ids only grow, whatever was deleted (a clear, an eviction of the newest
            # rows): the other processes learn the new keys as the rows after the last they saw.
            first = max(int(ids), top or 0) + 1
            # The statements' values, row after row, in one flat list (as they are bound).
            values: list[Any] = []
            for i, (k, w) in enumerate(pending.items()):
                body, now = bytes(w.body), w.stored
                values += (
                    first + i,
                    _short(k),
                    k,
                    bytearray(body),
                    len(body),
                    now,
                    now,
                    w.expires or 0,
                    -1 if w.hint is None else w.hint,
                )
            for at, size in _chunks(len(pending)):
                db.execute(_insert(size), values[at * _COLUMNS : (at + size) * _COLUMNS])
            db.execute(
                "UPDATE counters SET value = ? WHERE name = 'ids'", (first + len(pending) - 1,)
            )
        # The new rows' sizes: this flush's, and any a schema 2 process stored without its
        # trigger since the last flush.
        last, added = db.execute(
            "SELECT max(id), total(size) FROM entries WHERE id > ?", (counted,)
        ).fetchone()
        if last is not None:
            db.execute(
                "UPDATE counters SET value = CASE name WHEN 'counted' THEN ? ELSE value + ? END "
                "WHERE name IN ('counted', 'bytes')",
                (last, added),
            )
        if touched:
            db.executemany(
                "UPDATE entries SET used = ?, hits = hits + ? WHERE kh = ? AND key = ?",
                [(used, hits, _short(k), k) for k, (used, hits, _) in touched.items()],
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


def _each(hinted: _Hinted | None) -> Sequence[_Waiting]:
    if hinted is None:
        return ()
    return hinted if isinstance(hinted, list) else (hinted,)


def _keyed(hinted: dict[int | None, _Hinted]) -> dict[str, _Waiting]:
    """The answers to write, by key: the keys not made yet are made now (on the writer thread,
    one after the other: the code runs hot), an answer whose key cannot be made is dropped,
    and of two answers to one key the later is kept."""
    batch: dict[str, _Waiting] = {}
    for waiting in itertools.chain.from_iterable(map(_each, hinted.values())):
        key = waiting.made_key()
        if key is not None:
            other = batch.get(key)
            if other is None or other.stored <= waiting.stored:
                batch[key] = waiting
    return batch


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
            # Not the row ids: they only grow (see _write).
            db.execute("UPDATE counters SET value = 0 WHERE name != 'ids'")
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
