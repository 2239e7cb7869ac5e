"""SimpleLLMFunc on llmplug: code written for SimpleLLMFunc 0.7.8 or 0.8.4 runs after one
textual substitution, ``SimpleLLMFunc`` -> ``llmplug.slf`` (``from llmplug.slf import
llm_chat``, ``from llmplug.slf.hooks import is_event_yield``, ...).

This package mirrors SimpleLLMFunc's module paths (``.hooks``, ``.hooks.events``,
``.hooks.stream``, ``.interface``, ``.tool``, ``.type``, ``.logger``, ``.llm_decorator``) and
keeps SimpleLLMFunc's names out of llmplug's own API, whose typed events stay the native way
(see docs/migrating-from-simplellmfunc.md)."""

from llmplug import (
    APIKeyPool,
    HistoryList,
    ImgPath,
    ImgUrl,
    LLM_Interface,
    MultimodalContent,
    MultimodalList,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    Text,
    TokenBucket,
    UserChatMessage,
)

from ._decorators import (
    LLMChat,
    LLMFunction,
    async_llm_chat,
    async_llm_function,
    llm_chat,
    llm_function,
)
from .logger import (
    LogLevel,
    app_log,
    async_log_context,
    get_current_context_attribute,
    get_current_trace_id,
    get_location,
    get_logger,
    log_context,
    push_critical,
    push_debug,
    push_error,
    push_info,
    push_warning,
    set_current_context_attribute,
    setup_logger,
)

# Imported after the rest, as SimpleLLMFunc does: the subpackage ``tool`` is loaded, then the
# name is bound to the decorator (a later ``import llmplug.slf.tool`` does not rebind it).
from .tool import Tool, tool

__all__ = [
    "APIKeyPool",
    "HistoryList",
    "ImgPath",
    "ImgUrl",
    "LLMChat",
    "LLMFunction",
    "LLM_Interface",
    "LogLevel",
    "MultimodalContent",
    "MultimodalList",
    "OpenAICompatible",
    "OpenAIResponsesCompatible",
    "Text",
    "TokenBucket",
    "Tool",
    "UserChatMessage",
    "app_log",
    "async_llm_chat",
    "async_llm_function",
    "async_log_context",
    "get_current_context_attribute",
    "get_current_trace_id",
    "get_location",
    "get_logger",
    "llm_chat",
    "llm_function",
    "log_context",
    "push_critical",
    "push_debug",
    "push_error",
    "push_info",
    "push_warning",
    "set_current_context_attribute",
    "setup_logger",
    "tool",
]
