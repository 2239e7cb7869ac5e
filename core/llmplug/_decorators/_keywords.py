"""Decorator keywords that are not provider parameters.

A decorator's extra keywords (``temperature``, ``max_tokens``, ...) go into the request body.
SimpleLLMFunc's own decorator keywords must never get there (a provider answers 400, and an
object such as a SelfReference cannot even be encoded): each is honoured where llmplug has the
feature, and otherwise refused when the function is decorated, saying what to use instead."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from llmplug._vocab._errors import ConfigError

__all__ = [
    "check_call_keywords",
    "check_chat_options",
    "check_decorator_keywords",
    "check_function_options",
    "new_trace_id",
]

_NO_SELF_REFERENCE = (
    "SelfReference (agent memory and forks) is not part of llmplug: keep the history that "
    "@llm_chat gives back and pass it to the next call"
)
_NO_RETRY_FLAG = (
    "llmplug retries what is worth retrying on its own: set max_retries= on the interface "
    "(or per call through _llm_params)"
)

# Keywords that belong to the other decorator, or to no llmplug decorator at all. The value
# does not matter: given here, a keyword would otherwise be sent to the provider.
_REFUSED: dict[str, dict[str, str]] = {
    "llm_function": {
        "return_mode": "return_mode is an @llm_chat keyword: @llm_function returns the value",
        "stream": "@llm_function returns one value; stream=True is an @llm_chat keyword",
        "strict_signature": "strict_signature is an @llm_chat keyword",
        "self_reference": _NO_SELF_REFERENCE,
        "self_reference_key": _NO_SELF_REFERENCE,
        "retry_on_exception": _NO_RETRY_FLAG,
    },
    "llm_chat": {
        "system_prompt_template": "system_prompt_template is an @llm_function keyword: the "
        "docstring is the system prompt (with {placeholders} from _template_params)",
        "user_prompt_template": "user_prompt_template is an @llm_function keyword",
        "retry_on_exception": _NO_RETRY_FLAG,
    },
}


def check_decorator_keywords(decorator: str, llm_kwargs: Mapping[str, Any]) -> None:
    """Refuse, before any call, a keyword that is not a provider parameter."""
    refused = _REFUSED[decorator]
    for name in llm_kwargs:
        reason = refused.get(name)
        if reason is not None:
            raise ConfigError(f"@{decorator}({name}=...) is not supported: {reason}")


def check_chat_options(
    enable_event: bool, self_reference: object, self_reference_key: str | None
) -> None:
    """SimpleLLMFunc's @llm_chat keywords that llmplug does not honour, at a value that would
    change something."""
    if enable_event:
        raise ConfigError(
            "@llm_chat(enable_event=True) is not supported: call agent.events(...) instead of "
            "agent(...) for llmplug's typed events (text, reasoning, tool calls and results, "
            "and a last ChatDone with usage and history)"
        )
    if self_reference is not None or self_reference_key is not None:
        name = "self_reference" if self_reference is not None else "self_reference_key"
        raise ConfigError(f"@llm_chat({name}=...) is not supported: {_NO_SELF_REFERENCE}")


def check_function_options(enable_event: bool) -> None:
    if enable_event:
        raise ConfigError(
            "@llm_function(enable_event=True) is not supported: an @llm_function returns its "
            "value; for typed events of the model's turns, use @llm_chat and agent.events(...)"
        )


_ABORT = (
    "_abort_signal is not supported: cancel the task running the call, or stop iterating an "
    "@llm_chat (the request is closed at once)"
)


def check_call_keywords(name: str, kwargs: Mapping[str, Any]) -> None:
    """Call-time keywords of SimpleLLMFunc that llmplug does not take."""
    if "_abort_signal" in kwargs:
        raise TypeError(f"{name}(): {_ABORT}")


def new_trace_id(name: str) -> str:
    """One id for every request a decorated call makes (its tool turns, retries, repairs)."""
    return f"{name}_{os.urandom(6).hex()}"
