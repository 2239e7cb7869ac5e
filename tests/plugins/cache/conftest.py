"""A cache file of each test's own, and interfaces with a cache on the test server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmplug import LLMInterface, ModelGroup, Pricing, Registry
from tests.conftest import MakeLLM

Cached = Callable[..., LLMInterface]

PRICING = Pricing(input=1.0, output=2.0)


async def flushed(owner: LLMInterface | ModelGroup) -> None:
    """Write what the cache gathered, now (it writes every moment, and at exit, on its own)."""
    wrapper = owner.call_wrapper
    assert wrapper is not None
    await asyncio.to_thread(wrapper.flush)  # type: ignore[attr-defined]


async def looked(owner: LLMInterface | ModelGroup) -> None:
    """Have the cache know what its file holds, now (its writer thread looks on its own soon
    after the first call): from then on, a question whose hint no answer has is a miss known
    without its key (see SQLiteStore)."""
    wrapper = owner.call_wrapper
    assert wrapper is not None
    await asyncio.to_thread(wrapper.shared.store.sync)  # type: ignore[attr-defined]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "responses.db"


@pytest.fixture
def cached(make_llm: MakeLLM, db: Path) -> Cached:
    """``make_llm`` with ``cache={"path": <this test's file>, **cache}``."""

    def make(cache: dict[str, Any] | None = None, **kw: Any) -> LLMInterface:
        return make_llm(cache={"path": str(db), **(cache or {})}, **kw)

    return make


Watch = Callable[[LLMInterface, Any], None]


@pytest.fixture
def watched() -> Iterator[Watch]:
    """Register a plugin with an interface's registry (the process's own, shared) for the
    test."""
    registered: list[tuple[Registry, str]] = []

    def watch(llm: LLMInterface, plugin: Any) -> None:
        registry = llm.pipeline.registry
        registered.append((registry, registry.register(plugin)))

    yield watch
    for registry, name in registered:
        registry.unregister(name)
