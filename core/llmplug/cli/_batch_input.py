"""The input file of a batch: its lines as bytes, and the check that its ids are unique.

OpenAI's Batch API refuses a file in which two lines share a ``custom_id``; so does
``llmplug batch``, before it sends anything: run anyway, both lines would be sent and written
under one id, and a resumed run could not tell which of them was done."""

from __future__ import annotations

import array
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import msgspec

from ._batch_lines import line_id
from ._common import EXIT_USAGE, fail

__all__ = ["check_unique", "lines", "spool_stdin"]

_BOM = b"\xef\xbb\xbf"
_BUCKETS = 256


class _Ids(msgspec.Struct):
    """The two fields a line's id may come from; the rest of the line is skipped unread."""

    custom_id: Any = msgspec.UNSET
    id: Any = msgspec.UNSET


_ids = msgspec.json.Decoder(_Ids).decode


def lines(path: str) -> Iterator[bytes]:
    """The lines of ``path``, the first without a UTF-8 BOM (editors on Windows write one; left
    in, it would make line 1 unreadable JSON)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - a generator's file, closed when it ends
    except OSError as exc:
        fail(f"{path}: cannot read the input: {exc.strerror or exc}", EXIT_USAGE)
    with f:
        first = f.readline()
        yield first[3:] if first.startswith(_BOM) else first
        yield from f


def spool_stdin() -> str:
    """Stdin copied whole into a temporary file, whose path is returned (the caller removes
    it): its ids must be checked before the first request is sent, so it is read to its end
    first, and it is then read like any input file."""
    with tempfile.NamedTemporaryFile(prefix="llmplug-batch-", suffix=".jsonl", delete=False) as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
        return f.name


def _id_of(line: bytes, number: int) -> str | None:
    """The id under which the run writes the line's output line (``parse_request``'s rules),
    or None for a blank line, which is skipped."""
    if not line.strip():
        return None
    try:
        line.decode()  # the Struct skips the other fields unchecked; parse_request does not
        given = _ids(line)
    except (UnicodeDecodeError, msgspec.DecodeError):  # not JSON, or not an object
        return line_id(number)
    cid = given.custom_id if given.custom_id is not msgspec.UNSET else given.id
    return cid if isinstance(cid, str) and cid else line_id(number)


def check_unique(path: str) -> None:
    """Fail (exit 2) naming the first two lines of ``path`` that would be written under one id.

    Memory is 8 bytes a line: each id's hash is kept in one of 256 arrays by its low byte,
    each array then checked alone; only when two hashes meet is the file read again, for the
    ids behind them (a 64-bit hash, so practically only for real duplicates)."""
    buckets = [array.array("q") for _ in range(_BUCKETS)]
    for number, line in enumerate(lines(path), 1):
        cid = _id_of(line, number)
        if cid is not None:
            h = hash(cid)
            buckets[h % _BUCKETS].append(h)
    clashes: set[int] = set()
    for i, bucket in enumerate(buckets):
        seen: set[int] = set()
        for h in bucket:
            if h in seen:
                clashes.add(h)
            seen.add(h)
        buckets[i] = array.array("q")  # freed as it goes: the peak is one bucket's set
    if clashes:
        _name_duplicate(path, clashes)


def _name_duplicate(path: str, clashes: set[int]) -> None:
    first: dict[str, int] = {}
    for number, line in enumerate(lines(path), 1):
        cid = _id_of(line, number)
        if cid is None or hash(cid) not in clashes:
            continue
        if cid not in first:
            first[cid] = number
            continue
        made_up = [n for n in (first[cid], number) if cid == line_id(n)]
        why = ""
        if made_up:
            why = f" (line {made_up[0]} cannot be read; its error line takes that id)"
        fail(
            f"{path}: lines {first[cid]} and {number} have the same custom_id {cid!r}{why}: "
            "each request needs its own (OpenAI's Batch API refuses such a file too); "
            "nothing was sent",
            EXIT_USAGE,
        )
