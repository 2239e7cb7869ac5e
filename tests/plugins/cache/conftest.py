"""A cache file of each test's own, and interfaces with a cache on the test server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmplug import LLMInterface
from tests.conftest import MakeLLM

Cached = Callable[..., LLMInterface]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "responses.db"


@pytest.fixture
def cached(make_llm: MakeLLM, db: Path) -> Cached:
    """``make_llm`` with ``cache={"path": <this test's file>, **cache}``."""

    def make(cache: dict[str, Any] | None = None, **kw: Any) -> LLMInterface:
        return make_llm(cache={"path": str(db), **(cache or {})}, **kw)

    return make
