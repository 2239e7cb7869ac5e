"""SimpleLLMFunc's ``SimpleLLMFunc.interface.openai_compatible``."""

from llmplug import OpenAICompatible

__all__ = ["OpenAICompatible"]
