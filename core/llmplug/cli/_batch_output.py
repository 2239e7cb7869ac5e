"""The output file of a batch: what is already done in it, and appending one line at a time."""

from __future__ import annotations

import os
import stat
import sys

import msgspec

from ._common import EXIT_USAGE, fail

__all__ = ["Output", "done_ids"]


class _Done(msgspec.Struct):
    custom_id: str


_done = msgspec.json.Decoder(_Done).decode


def done_ids(path: str) -> tuple[set[str], int]:
    """The custom_ids of the output's complete lines, and how many bytes of a torn last line
    (one a killed run left half written) were cut off so that request is done again.

    Only the lines' custom_ids are kept: the set grows with the output, never with the input."""
    ids: set[str] = set()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            # A device or a pipe (/dev/full, /dev/stdout): nothing to read back (reading
            # /dev/full gives zeros without end, a pipe blocks), so nothing is resumed, as
            # with -o -.
            return ids, 0
        f = open(path, "r+b")  # noqa: SIM115 - closed below, truncated while open
    except FileNotFoundError:
        return ids, 0
    except OSError as exc:
        fail(f"{path}: cannot write the output: {exc.strerror or exc}", EXIT_USAGE)
    with f:
        good = 0
        for number, line in enumerate(f, 1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("no newline")
                ids.add(_done(line).custom_id)
            except (ValueError, msgspec.DecodeError):
                rest = f.read()
                if rest.strip():
                    fail(
                        f"{path}: line {number} is not an output line and more follow: "
                        "not resuming over it (fix or move the file)",
                        EXIT_USAGE,
                    )
                cut = len(line) + len(rest)
                f.truncate(good)
                return ids, cut
            good += len(line)
    return ids, 0


class Output:
    """Appends whole lines: each is one ``write`` on an ``O_APPEND`` descriptor, so a line is
    in the file entirely or (killed mid-write) torn at the end, where the next run finds it."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.fd = sys.stdout.fileno()
            sys.stdout.flush()
        else:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except OSError as exc:
                fail(f"{path}: cannot write the output: {exc.strerror or exc}", EXIT_USAGE)

    def write(self, line: bytes) -> None:
        view = memoryview(line)
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        if self.path != "-":
            os.close(self.fd)
