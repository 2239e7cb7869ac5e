"""Runs the Python blocks of one Markdown page, in order, as one script, as a reader who copies
them would (``python tests/docs_code.py PAGE``; tests/test_docs_code.py runs every page).

- Each fenced ```` ```python ```` block runs, in the page's order, in one ``__main__`` module, so
  a block may use what an earlier one defined. A block may ``await`` at top level (as in an
  async REPL); it then runs to its end on one event loop the page's blocks share.
- ``server``, a started :class:`llmplug.testing.LLMTestServer`, is there before the first block:
  blocks and setups point interfaces at ``server.base_url``.
- ``<!-- docs-setup ... -->``: an HTML comment (hidden on the site and on GitHub) whose text is
  Python run at that point, e.g. to rebind a real provider's interface, shown to the reader, to
  the local server, or to push the replies a typed function expects.
- ``<!-- needs-keys -->`` just before a block: the block needs a real provider and real keys,
  and is skipped (CONTRIBUTING.md says when to use it).

Tracebacks name the page and its line numbers.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A python fence, a hidden setup, or a needs-keys marker, in the page's order.
PIECE = re.compile(
    r"^(?P<keys><!-- needs-keys -->\n(?:\s*\n)*)?```python[^\n]*\n(?P<code>.*?)^```"
    r"|^<!-- docs-setup\n(?P<setup>.*?)^-->",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Block:
    line: int  # where the code starts in the page (1-based)
    code: str
    needs_keys: bool
    hidden: bool


def blocks(text: str) -> Iterator[Block]:
    """The page's runnable pieces, in order."""
    for m in PIECE.finditer(text):
        group = "setup" if m.group("setup") is not None else "code"
        line = text.count("\n", 0, m.start(group)) + 1
        yield Block(line, m.group(group), bool(m.group("keys")), group == "setup")


def run_page(page: Path) -> int:
    """Run the page's blocks; the number run."""
    from llmplug.testing import LLMTestServer

    text = page.read_text(encoding="utf-8")
    # A real __main__ module, as when the code is a script: pydantic and msgspec resolve a
    # class's annotations from the module it is defined in.
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    ns: dict[str, Any] = main.__dict__
    loop = asyncio.new_event_loop()
    ran = 0
    with LLMTestServer() as server, tempfile.TemporaryDirectory() as tmp:
        ns["server"] = server
        os.chdir(tmp)  # files a block writes (a provider.json) go nowhere else
        try:
            for block in blocks(text):
                if block.needs_keys:
                    continue
                # Padded so that a traceback's line numbers are the page's.
                source = "\n" * (block.line - 1) + block.code
                code = compile(source, str(page), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                result = eval(code, ns)  # a coroutine when the block awaits at top level
                if asyncio.iscoroutine(result):
                    loop.run_until_complete(result)
                ran += 1
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    return ran


if __name__ == "__main__":
    print(f"{run_page(Path(sys.argv[1]).resolve())} blocks ran")
