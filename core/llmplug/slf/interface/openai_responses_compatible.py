"""SimpleLLMFunc's ``SimpleLLMFunc.interface.openai_responses_compatible``."""

from llmplug import OpenAIResponsesCompatible

__all__ = ["OpenAIResponsesCompatible"]
