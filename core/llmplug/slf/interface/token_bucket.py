"""SimpleLLMFunc's ``SimpleLLMFunc.interface.token_bucket``."""

from llmplug import TokenBucket

__all__ = ["TokenBucket"]
