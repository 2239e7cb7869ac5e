"""Fixtures of the model-group tests: a second test server standing for a second provider,
and members (OpenAI-compatible interfaces, one key each) on either server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from llmplug import APIKeyPool, OpenAICompatible
from llmplug.testing import LLMTestServer

Make = Callable[..., OpenAICompatible]


@pytest.fixture
def other() -> Iterator[LLMTestServer]:
    with LLMTestServer() as second:
        yield second


@pytest.fixture
async def member() -> AsyncIterator[Make]:
    """``member(server, provider, **options)``: model ``llama`` on ``server``, one retry, no
    pacing; closed after the test."""
    made: list[OpenAICompatible] = []

    def make(server: LLMTestServer, provider: str, **kw: Any) -> OpenAICompatible:
        opts: dict[str, Any] = {
            "max_retries": 1,
            "retry_delay": 0.001,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000.0,
        }
        opts.update(kw)
        llm = OpenAICompatible(
            api_key_pool=APIKeyPool([f"sk-{provider}"], provider, shared=False),
            model_name="llama",
            base_url=server.base_url,
            **opts,
        )
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()
