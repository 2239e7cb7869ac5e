"""SimpleLLMFunc's ``SimpleLLMFunc.interface.key_pool``."""

from llmplug import APIKeyPool

__all__ = ["APIKeyPool"]
