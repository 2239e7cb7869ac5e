"""Interfaces on the test server speaking the gemini wire."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from llmplug_gemini import GeminiCompatible

MakeGemini = Callable[..., GeminiCompatible]


@pytest.fixture
def gemini(make_llm: Callable[..., Any]) -> MakeGemini:
    """``make_llm`` with the gemini wire (found through the plugin's entry point)."""

    def make(**kw: Any) -> GeminiCompatible:
        llm: GeminiCompatible = make_llm(interface=GeminiCompatible, **kw)
        return llm

    return make
