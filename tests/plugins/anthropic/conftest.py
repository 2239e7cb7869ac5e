"""Interfaces on the test server speaking the anthropic-messages wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmplug import LLMInterface

MakeLLM = Callable[..., LLMInterface]


@pytest.fixture
def anthropic(make_llm: MakeLLM) -> Callable[..., LLMInterface]:
    """``make_llm`` with ``wire="anthropic-messages"`` (found through the plugin's entry point)."""

    def make(**kw: Any) -> LLMInterface:
        return make_llm(interface=LLMInterface, wire="anthropic-messages", **kw)

    return make
