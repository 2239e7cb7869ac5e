"""Check the recorded expectations of this folder against SimpleLLMFunc itself (not a test,
and not a dependency of the suite).

    python -m venv /tmp/slf084 && /tmp/slf084/bin/pip install --ignore-requires-python \\
        SimpleLLMFunc==0.8.4
    .venv/bin/python -m tests.slf.record_with_simplellmfunc 084 /tmp/slf084/bin/python

runs every README case of that version (``test_readme_snippets.CASES``, with the replies
SimpleLLMFunc gets: XML where llmplug's are JSON) with SimpleLLMFunc on the test server and
prints, per block, whether its output is the recorded one. The programs' outputs
(``programs/*.txt``) were recorded the same way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from llmplug.testing import LLMTestServer

from . import _snippets
from .test_readme_snippets import CASES

_RUNNER = """
import ast, asyncio, json, sys, types
main = types.ModuleType("__main__")
sys.modules["__main__"] = main
for code in json.load(open("parts.json")):
    result = eval(compile(code, "<readme>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT),
                  main.__dict__)
    if asyncio.iscoroutine(result):
        asyncio.run(result)
"""


def main(version: str, python: str) -> None:
    with LLMTestServer() as server:
        for (v, index), case in sorted(CASES.items()):
            if v != version or case.out_of_scope:
                continue
            server.clear()
            server.push(*(case.slf_replies or case.replies))
            tmp = Path(tempfile.mkdtemp())
            _snippets.workdir(tmp, server)
            blocks = _snippets.blocks(version)
            prelude = _snippets.PRELUDE.replace("llmplug.slf", "SimpleLLMFunc")
            parts = [prelude, *(blocks[i] for i in case.before), blocks[index]]
            (tmp / "parts.json").write_text(json.dumps(parts))
            env = dict(os.environ, LOG_LEVEL="CRITICAL", LOG_DIR=str(tmp / "logs"))
            done = subprocess.run(
                [python, "-c", _RUNNER], cwd=tmp, capture_output=True, text=True, env=env
            )
            failed = done.returncode != 0
            same = done.stdout == case.stdout and failed == (case.raises is not None)
            last = done.stderr.strip().splitlines()[-1:] if failed else []
            print(f"{version}:{index} same={same} failed={failed} {last}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
