"""A full disk: the process may write no more bytes (RLIMIT_FSIZE, what a full disk looks like
to SQLite: its writes fail), and every call still gets its answer, with one warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmplug.testing import LLMTestServer

CODE = """
import asyncio, logging, resource, signal, sys
from llmplug import APIKeyPool, OpenAICompatible

logging.basicConfig(level=logging.WARNING)  # the warning is logged: show it on stderr
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk

async def main(base_url, path):
    pool = APIKeyPool(["sk-full"], "test", shared=False)
    llm = OpenAICompatible(pool, "m", base_url, cache={"path": path}, max_retries=0,
                          rate_limit_capacity=1000, rate_limit_refill_rate=1000)
    await llm.chat("first")
    llm.call_wrapper.flush()
    resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))
    for i in range(60):
        got = await llm.chat(f"question {i} " + "padding " * 80)
        assert got.text.startswith(f"echo: question {i} "), got.text
        llm.call_wrapper.flush()
    print("all answered")

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_means_uncached_calls_and_one_warning(
    server: LLMTestServer, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CODE, server.base_url, str(tmp_path / "full.db")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "all answered"
    warnings = [line for line in done.stderr.splitlines() if "llmplug cache at" in line]
    assert len(warnings) >= 1 and "failed while storing" in warnings[0], done.stderr
    assert len([w for w in warnings if "failed" in w]) == 1, done.stderr
