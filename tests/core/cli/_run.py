"""Running ``llmplug`` as a user does: a subprocess, against the test server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmplug.testing import LLMTestServer

LLMPLUG = [sys.executable, "-m", "llmplug"]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("LLMPLUG_")}
    out["PYTHONUNBUFFERED"] = "1"
    return out


def provider_file(tmp: Path, server: LLMTestServer, **entry: Any) -> Path:
    """A provider.json with one provider ``local``: ``test-model`` on three keys (limits that do
    not pace unless given), and ``resp-model`` on the Responses wire."""
    model = {
        "model_name": "test-model",
        "api_keys": ["sk-batch-key-1", "sk-batch-key-2", "sk-batch-key-3"],
        "base_url": server.base_url,
        "retry_delay": 0.001,
        "max_retries": 8,
        "rate_limit_capacity": 10_000,
        "rate_limit_refill_rate": 10_000,
        **entry,
    }
    responses = {
        "model_name": "resp-model",
        "wire": "openai-responses",
        "api_keys": ["sk-batch-key-1"],
        "base_url": server.base_url,
    }
    path = tmp / "provider.json"
    path.write_text(json.dumps({"local": [model, responses]}))
    return path


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LLMPLUG, *map(str, args)],
        env=env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def output_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def pane(session: str) -> str:
    done = subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    )
    return done.stdout


def wait_for(
    predicate: Callable[[], bool], what: str, limit: float = 20.0, screen: Callable[[], str] = str
) -> None:
    """Polls the terminal: tmux offers no event for "this text appeared"."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen()}")
        time.sleep(0.05)


def batch_on_terminal(
    tmux: Callable[..., str], tmp: Path, config: Path, model: str, src: Path
) -> str:
    """``llmplug batch`` run to its end on a terminal (tmux), where it draws its live view;
    the screen it leaves. It must exit 0."""
    rc = tmp / "rc"
    command = " ".join(
        shlex.quote(str(x))
        for x in [*LLMPLUG, "batch", "-c", config, "-m", model, src, "-o", tmp / "out.jsonl"]
    )
    script = tmp / "batch.sh"
    script.write_text(f"{command}\necho $? > {rc}\nsleep 60\n")
    session = tmux(f"sh {shlex.quote(str(script))}")
    wait_for(lambda: rc.exists() and rc.read_text().strip() != "", "the run to end")
    assert rc.read_text().strip() == "0"
    return pane(session)
