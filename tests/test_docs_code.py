"""Every Python block of the README and of docs/ runs, page by page, against the local test
server (tests/docs_code.py says how a page is run and what the markers mean)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_code import blocks

ROOT = Path(__file__).parent.parent
RUNNER = Path(__file__).parent / "docs_code.py"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
WITH_CODE = [p for p in PAGES if any(not b.needs_keys for b in blocks(p.read_text()))]


@pytest.mark.parametrize("page", WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in WITH_CODE])
def test_the_pages_python_blocks_run(page: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(page)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_guides_show_running_code() -> None:
    # The pages whose examples are the point: a page that lost them (or marked them all as
    # needing keys) would pass the test above by running nothing.
    for name, least in {
        "plugins.md": 4,
        "quickstart.md": 2,
        "guide/decorators.md": 1,
        "guide/streaming.md": 2,
    }.items():
        page = ROOT / "docs" / name
        runnable = [b for b in blocks(page.read_text()) if not b.needs_keys and not b.hidden]
        assert len(runnable) >= least, name


def test_a_marked_block_is_skipped_and_a_hidden_setup_runs() -> None:
    page = (
        "```python\nx = 1\n```\n\n<!-- needs-keys -->\n```python\nraise SystemExit(1)\n```\n"
        "<!-- docs-setup\nx += 1\n-->\n"
    )
    found = list(blocks(page))
    assert [(b.code, b.needs_keys, b.hidden) for b in found] == [
        ("x = 1\n", False, False),
        ("raise SystemExit(1)\n", True, False),
        ("x += 1\n", False, True),
    ]
    assert [b.line for b in found] == [2, 7, 10]
