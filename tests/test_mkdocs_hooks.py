"""The docs site's own checks (scripts/mkdocs_hooks.py), which `mkdocs build --strict` in
scripts/test relies on to fail on a missing docstring or a broken link to a repository file."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).parent.parent


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", ROOT / "scripts" / "mkdocs_hooks.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = load_hooks()


def render(markdown: str) -> str:
    page = SimpleNamespace(
        file=SimpleNamespace(
            abs_src_path=str(ROOT / "docs" / "guide" / "x.md"), src_path="guide/x.md"
        )
    )
    result: str = HOOKS.on_page_markdown(markdown, page, {"docs_dir": str(ROOT / "docs")}, None)
    return result


def test_a_link_to_a_repository_file_shows_its_path_and_a_page_link_is_left_to_mkdocs() -> None:
    assert render("[the otel plugin](../../plugins/llmplug-otel/README.md)") == (
        "the otel plugin (`plugins/llmplug-otel/README.md`)"
    )
    assert render("[plugins/llmplug-otel](../../plugins/llmplug-otel/README.md)") == (
        "`plugins/llmplug-otel/README.md`"
    )
    assert render("[groups](groups.md#x) and ![img](../../a.png)") == (
        "[groups](groups.md#x) and ![img](../../a.png)"
    )


def test_a_link_to_a_missing_repository_file_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.llmplug"):
        render("[gone](../../plugins/no-such-plugin/README.md)")
    assert "no-such-plugin" in caplog.text


def test_every_public_name_has_a_docstring_and_a_place_in_the_reference() -> None:
    assert HOOKS._undocumented() == []
    referenced = HOOKS._referenced(ROOT / "docs")
    assert {name for name, _ in HOOKS._public_objects()} <= referenced
