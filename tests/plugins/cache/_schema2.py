"""A process of schema 2 (llmplug-cache before the bytes counter left its insert trigger), as it
reads and writes a cache file: the statements it ran, kept here as they were, so that the
current store can be tried against it on one file."""

from __future__ import annotations

import sqlite3
import time

from llmplug_cache._sqlite import _short

#: What it ran whenever it opened a file whose version was not 2: its tables if missing, its
#: three triggers if missing, and version 2.
PREPARE = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY, kh INTEGER NOT NULL UNIQUE, key TEXT NOT NULL,
    body BLOB NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, used REAL NOT NULL,
    expires REAL, hits INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL);
INSERT OR IGNORE INTO counters VALUES
    ('hits', 0), ('misses', 0), ('bytes', 0), ('saved', 0), ('ids', 0);
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE counters SET value = value + NEW.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    UPDATE counters SET value = value - OLD.size WHERE name = 'bytes';
END;
CREATE TRIGGER IF NOT EXISTS entries_changed AFTER UPDATE OF size ON entries BEGIN
    UPDATE counters SET value = value + NEW.size - OLD.size WHERE name = 'bytes';
END;
PRAGMA user_version = 2;
COMMIT;
"""

INSERT = (
    "INSERT INTO entries (id, kh, key, body, size, created, used, expires) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kh) DO UPDATE SET key = excluded.key, "
    "body = excluded.body, size = excluded.size, created = excluded.created, "
    "used = excluded.used, expires = excluded.expires, hits = 0"
)
EVICT = (
    "DELETE FROM entries WHERE id IN (SELECT id FROM (SELECT id, size, "
    "SUM(size) OVER (ORDER BY used, id) AS running FROM entries) WHERE running - size < ?)"
)


class Schema2Process:
    """One connection of a schema 2 process: it prepares the file once, when it opens it, and
    never looks at the version again."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=2.0, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != 2:
            self.db.executescript(PREPARE)

    def write(self, answers: dict[str, bytes], max_bytes: int) -> None:
        """One flush of its writer: the answers, then eviction down to 90 % if over."""
        db = self.db
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        (top,) = db.execute("SELECT max(id) FROM entries").fetchone()
        (ids,) = db.execute("SELECT value FROM counters WHERE name = 'ids'").fetchone()
        first = max(int(ids), top or 0) + 1
        for i, (key, body) in enumerate(answers.items()):
            db.execute(INSERT, (first + i, _short(key), key, body, len(body), now, now, None))
        db.execute("UPDATE counters SET value = ? WHERE name = 'ids'", (first + len(answers) - 1,))
        db.execute("UPDATE counters SET value = value + ? WHERE name = 'misses'", (len(answers),))
        (total,) = db.execute("SELECT value FROM counters WHERE name = 'bytes'").fetchone()
        if total > max_bytes:
            db.execute(EVICT, (total - int(max_bytes * 0.9),))
        db.execute("COMMIT")

    def clear(self) -> None:
        """``llmplug cache clear`` of schema 2."""
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DELETE FROM entries")
        self.db.execute("UPDATE counters SET value = 0 WHERE name != 'ids'")
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()
