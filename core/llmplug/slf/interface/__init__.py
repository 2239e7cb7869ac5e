"""SimpleLLMFunc's ``SimpleLLMFunc.interface``: llmplug's interfaces."""

from llmplug import (
    APIKeyPool,
    LLM_Interface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    TokenBucket,
)

__all__ = [
    "APIKeyPool",
    "LLM_Interface",
    "OpenAICompatible",
    "OpenAIResponsesCompatible",
    "TokenBucket",
]
