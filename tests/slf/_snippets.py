"""Running SimpleLLMFunc's README code blocks as they are written, with only the substitution
``SimpleLLMFunc`` -> ``llmplug.slf``, against the test server: what each block assumes but
does not define (``llm``, a ``provider.json``, tools it names) is given to it here."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import io
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

from llmplug.testing import LLMTestServer
from tests.core._images import JPEG

HERE = Path(__file__).parent

#: provider.json entries the READMEs name: (provider, model)
_MODELS = [
    ("your_provider", "model"),
    ("volc_engine", "deepseek-v3-250324"),
    ("deepseek", "v3-turbo"),
    ("deepseek", "deepseek-v3.2"),
    ("openrouter", "gpt-5.4"),
]


def blocks(version: str) -> dict[int, str]:
    """The README's fenced Python blocks, by their index among all fenced blocks."""
    text = (HERE / f"readme_{version}" / "README.md").read_text(encoding="utf-8")
    fenced = re.findall(r"```(\w*)\n(.*?)```", text, re.S)
    return {i: body for i, (lang, body) in enumerate(fenced) if lang == "python"}


def substitute(code: str) -> str:
    return code.replace("SimpleLLMFunc", "llmplug.slf")


def workdir(tmp: Path, server: LLMTestServer) -> None:
    """A provider.json for every entry the READMEs load, and the images they read."""
    providers: dict[str, list[dict[str, Any]]] = {}
    for provider, model in _MODELS:
        providers.setdefault(provider, []).append(
            {
                "model_name": model,
                "api_keys": ["sk-test"],
                "base_url": server.base_url,
                "max_retries": 1,  # SimpleLLMFunc: attempts in all (0 makes none)
                "rate_limit_capacity": 1000,
                "rate_limit_refill_rate": 1000.0,
            }
        )
    (tmp / "provider.json").write_text(json.dumps(providers))
    (tmp / "reference.jpg").write_bytes(JPEG)


PRELUDE = """
import asyncio
from typing import Any, Dict, List
from llmplug.slf import OpenAICompatible, llm_chat, llm_function, tool
from llmplug.slf.type import ImgPath, ImgUrl, Text

llm = OpenAICompatible.load_from_json_file("provider.json")["your_provider"]["model"]
my_llm_interface = llm_interface = llm

@tool(name="search", description="Search the web")
async def search_tool(query: str) -> str:
    return "nothing found"

@tool(name="calculator", description="Calculate")
async def calculator(expression: str) -> str:
    return "4"

calculator_tool = calculator
tool1, tool2, search_web = search_tool, calculator, search_tool

@llm_function(llm_interface=llm)
async def classify_text(text: str) -> str:
    \"\"\"Classify text\"\"\"

texts = ["Text 1", "Text 2"]
"""


def run(code: str, tmp: Path, before: tuple[str, ...] = ()) -> str:
    """Run a block (top-level ``await`` allowed, as in the READMEs' fragments) in ``tmp``
    and give what it printed."""
    out = io.StringIO()
    # A real __main__ module, as when the README's code is a script: pydantic resolves a
    # model's annotations from the module the class is defined in.
    main = types.ModuleType("__main__")
    ns: dict[str, Any] = main.__dict__
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = main
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(PRELUDE, "<prelude>", "exec"), ns)
            for earlier in before:  # blocks the README shows first, in the same session
                _run_in(earlier, ns)
            _run_in(code, ns)
    finally:
        os.chdir(cwd)
        sys.modules["__main__"] = saved
    return out.getvalue()


def _run_in(code: str, ns: dict[str, Any]) -> None:
    compiled = compile(code, "<readme>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(compiled, ns)  # a coroutine when the block awaits at top level
    if asyncio.iscoroutine(result):
        asyncio.run(result)
