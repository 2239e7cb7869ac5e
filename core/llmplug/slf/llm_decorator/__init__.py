"""SimpleLLMFunc's ``SimpleLLMFunc.llm_decorator``."""

from llmplug.slf._decorators import (
    LLMChat,
    LLMFunction,
    async_llm_chat,
    async_llm_function,
    llm_chat,
    llm_function,
)

__all__ = [
    "LLMChat",
    "LLMFunction",
    "async_llm_chat",
    "async_llm_function",
    "llm_chat",
    "llm_function",
]
