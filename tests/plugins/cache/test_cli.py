"""``llmplug batch`` with a cache: hits line by line, counted in the summary with the money
saved; ``llmplug cache stats|clear``."""

from __future__ import annotations

import re
from pathlib import Path

from llmplug.testing import LLMTestServer, Reply
from tests.core.cli._run import provider_file, run
from tests.core.cli.test_batch import write_input


def row(summary: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}\s+(\S.*?)\s*$", summary, flags=re.MULTILINE)
    assert m, f"no row {name!r} in:\n{summary}"
    return m.group(1)


def test_a_batch_run_again_hits_line_by_line_and_says_what_it_saved(
    server: LLMTestServer, tmp_path: Path
) -> None:
    server.default = Reply(text="ok", usage={"prompt_tokens": 1000, "completion_tokens": 100})
    db = tmp_path / "responses.db"
    config = provider_file(
        tmp_path, server, pricing={"input": 2.0, "output": 8.0}, cache={"path": str(db)}
    )
    src = write_input(tmp_path / "in.jsonl", 10)
    first = run("batch", "-c", config, "-m", "local/test-model", src, "-o", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert "cache hits" not in first.stdout
    second = run("batch", "-c", config, "-m", "local/test-model", src, "-o", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    assert len(server.requests) == 10
    assert row(second.stdout, "cache hits") == "10"
    # Each line cost 1000 * 2 + 100 * 8 = 2,800 per million tokens, now saved; paid: nothing.
    assert row(second.stdout, "saved") == "0.028000"
    assert row(second.stdout, "cost") == "0.000000"
    assert (tmp_path / "a").read_text().count('"ok"') == (tmp_path / "b").read_text().count('"ok"')

    stats = run("cache", "stats", "--path", db)
    assert stats.returncode == 0, stats.stderr
    assert row(stats.stdout, "entries") == "10"
    assert row(stats.stdout, "hits") == "10" and row(stats.stdout, "misses") == "10"
    assert row(stats.stdout, "hit rate") == "50.0%"
    assert row(stats.stdout, "saved") == "0.028000"


def test_cache_clear_all_or_the_older_answers(server: LLMTestServer, tmp_path: Path) -> None:
    db = tmp_path / "responses.db"
    config = provider_file(tmp_path, server, cache={"path": str(db)})
    src = write_input(tmp_path / "in.jsonl", 4)
    done = run("batch", "-c", config, "-m", "local/test-model", src, "-o", tmp_path / "o")
    assert done.returncode == 0, done.stderr
    cleared = run("cache", "clear", "--older-than", "1h", "--path", db)
    assert cleared.stdout.startswith("cleared 0 answers"), cleared.stderr  # all are younger
    cleared = run("cache", "clear", "--older-than", "0s", "--path", db)
    assert cleared.stdout.startswith("cleared 4 answers"), cleared.stderr
    assert run("cache", "clear", "--path", db).stdout.startswith("cleared 0 answers")
    assert row(run("cache", "stats", "--path", db).stdout, "entries") == "0"
    bad = run("cache", "clear", "--older-than", "soon", "--path", db)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    missing = run("cache", "stats", "--path", tmp_path / "nothing.db")
    assert missing.returncode == 0 and "no cache at" in missing.stdout
