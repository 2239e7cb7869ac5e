"""A real terminal for the commands' interactive and live modes: tmux."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    if shutil.which("tmux") is None:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "tmux"], check=True, capture_output=True)
    session = f"llmplug-{uuid.uuid4().hex[:8]}"
    made = False

    def start(command: str) -> str:
        nonlocal made
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command],
            check=True,
        )
        made = True
        return session

    yield start
    if made:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
