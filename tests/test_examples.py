"""The README's demo and every example run, as a newcomer would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert "Traceback" not in proc.stderr


def test_demo_shows_every_part() -> None:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent.parent / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = proc.stdout
    for part in (
        "api_params went into the body: temperature=0.3",
        "typed result: Analysis(sentiment='positive'",
        "tool result",
        "history has 5 messages",
        "StickyKeys",
        "[text]",
        "[reasoning]",
        "model called get_weather",
        "fragment #0",
        "requests",
        "reached the server",
        "keys tried in order",
        "demo finished",
    ):
        assert part in out
    # Three keys share 12 calls evenly.
    assert out.count(": 4 requests") == 3
