"""Several processes on one SQLite file: each one's answers serve the others, and none of their
writes is lost or fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from llmplug.testing import LLMTestServer

WORKER = str(Path(__file__).with_name("_worker.py"))


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
