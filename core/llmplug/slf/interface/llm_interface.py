"""SimpleLLMFunc's ``SimpleLLMFunc.interface.llm_interface``."""

from llmplug import LLM_Interface

__all__ = ["LLM_Interface"]
