"""SimpleLLMFunc's ``SimpleLLMFunc.tool``."""

from llmplug.slf._decorators import tool

__all__ = ["tool"]
