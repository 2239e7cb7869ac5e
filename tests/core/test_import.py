"""``import llmplug`` is silent, writes nothing, stays light, and exports what ``__all__`` says."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import llmplug

# Imported only when first needed: the HTTP client, the logger, the entry-point machinery, the
# default plugins, the test server, and the command line with its display library; asyncio
# (with ssl, socket, subprocess and concurrent.futures it brings: a third of the import time)
# with the first interface or call, email.utils (HTTP dates) with the first Retry-After date,
# and hashlib (OpenSSL) with the first key.
LAZY = (
    "httpx2",
    "httpx",
    "structlog",
    "importlib.metadata",
    "asyncio",
    "ssl",
    "socket",
    "subprocess",
    "concurrent.futures",
    "email.utils",
    "hashlib",
    "llmplug._engine._transport",
    "llmplug._plugins",
    "llmplug._plugins.openai_chat",
    "llmplug._plugins.openai_responses",
    "llmplug._plugins.key_strategies",
    "llmplug._plugins.token_bucket",
    "llmplug.testing",
    "llmplug.cli",
    "rich",
)


def run_python(code: str, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, in an empty working directory and an empty HOME."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LLMPLUG_"))}
    env.update(PYTHONDONTWRITEBYTECODE="1", HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    done = subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(cwd.iterdir()) == []
    assert list(home.iterdir()) == []
    return done


def test_import_prints_nothing_and_writes_no_file(tmp_path: Path) -> None:
    # Development mode and warnings-as-errors: a warning at import would show (or fail).
    done = run_python("import llmplug", tmp_path, "-X", "dev", "-W", "error")
    assert (done.stdout, done.stderr) == ("", "")


def test_import_leaves_heavy_and_optional_modules_unimported(tmp_path: Path) -> None:
    code = (
        f"import json, sys, llmplug\nprint(json.dumps([m for m in {LAZY!r} if m in sys.modules]))"
    )
    done = run_python(code, tmp_path)
    assert json.loads(done.stdout) == []


def test_every_name_in_all_exists() -> None:
    assert len(set(llmplug.__all__)) == len(llmplug.__all__)
    missing = [name for name in llmplug.__all__ if not hasattr(llmplug, name)]
    assert missing == []
    assert llmplug.__version__ == importlib.metadata.version("llmplug")
    ns: dict[str, object] = {}
    exec("from llmplug import *", ns)
    assert set(llmplug.__all__) <= set(ns)
