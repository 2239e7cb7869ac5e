"""Fixtures for tests against real peers nobody here wrote (the LiteLLM proxy).

``scripts/test`` starts the proxy and exports ``LLMPLUG_LITELLM_URL``. Without it the tests are
skipped locally, but fail in CI (``CI=true``), so CI can never silently skip them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llmplug import APIKeyPool, LLMInterface, OpenAICompatible

MakeLiteLLM = Callable[..., Any]


@pytest.fixture(scope="session")
def litellm_url() -> str:
    """The LiteLLM proxy's OpenAI base URL (ending in ``/v1``)."""
    url = os.environ.get("LLMPLUG_LITELLM_URL", "").strip()
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "LLMPLUG_LITELLM_URL is not set: CI must run the LiteLLM integration tests "
                "(run them through scripts/test, which starts the proxy)"
            )
        pytest.skip("LLMPLUG_LITELLM_URL is not set (scripts/test starts LiteLLM and sets it)")
    return url


@pytest.fixture
async def make_litellm(litellm_url: str) -> AsyncIterator[MakeLiteLLM]:
    """Build interfaces on the proxy: fast retries and a limiter that does not pace, unless a
    test asks otherwise (``interface=OpenAIResponsesCompatible`` for the Responses API). All
    are closed after the test."""
    made: list[LLMInterface] = []

    def make(keys: list[str] | None = None, model: str = "fake", **kw: Any) -> Any:
        strategy: str = kw.pop("strategy", "round_robin")
        cls: type[LLMInterface] = kw.pop("interface", OpenAICompatible)
        opts: dict[str, Any] = {
            "base_url": litellm_url,
            "max_retries": 2,
            "retry_delay": 0.001,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000.0,
            "key_wait_timeout": 1.0,
        }
        opts.update(kw)
        pool = APIKeyPool(keys or ["sk-test-a"], "litellm", strategy=strategy, shared=False)
        llm = cls(api_key_pool=pool, model_name=model, **opts)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()
