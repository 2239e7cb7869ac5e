"""Every hook is documented, and every hook is exercised by a plugin of the tests' own."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from llmplug import _hookspecs

ROOT = Path(__file__).parent.parent.parent
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(_hookspecs, inspect.isfunction)
    if hasattr(fn, "llmplug_spec")
)


def test_there_are_four_hooks() -> None:
    assert HOOKS == ["acquire_rate", "build_request", "parse_stream", "select_key"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    spec = getattr(_hookspecs, hook)
    assert spec.__doc__ and len(spec.__doc__) > 40
    for doc in ("docs/architecture.md", "CONTRIBUTING.md", "README.md"):
        assert f"`{hook}(" in (ROOT / doc).read_text(), f"{hook} is not described in {doc}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_plugin(hook: str) -> None:
    # A third-party-style implementation (marked @hookimpl) of the hook in the tests or
    # examples proves the hook can be implemented and overridden from outside.
    pattern = re.compile(rf"@hookimpl[^\n]*\n\s*(?:async )?def {hook}\(")
    sources = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("examples/*.py")]
    assert any(pattern.search(p.read_text()) for p in sources), f"no test plugin for {hook}"
