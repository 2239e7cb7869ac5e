"""The ``anthropic-messages`` wire format: the Anthropic Messages API (``POST /messages``).

Installed as its own distribution and found through the ``llmplug`` entry-point group, exactly
as a third party's plugin would be."""

from __future__ import annotations

from llmplug import Call, HTTPRequest, LLMInterface, hookimpl

from ._parse import MessagesParser, RateLimits, rate_limits
from ._request import (
    ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
    THINKING_BUDGETS,
    WIRE,
    build_messages_request,
)

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "THINKING_BUDGETS",
    "WIRE",
    "AnthropicCompatible",
    "MessagesParser",
    "RateLimits",
    "build_request",
    "parse_stream",
    "rate_limits",
]

#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"wire": [WIRE]}


class AnthropicCompatible(LLMInterface):
    """Any server that speaks the Anthropic Messages API (``POST {base_url}/messages``), such
    as ``https://api.anthropic.com/v1``: ``LLMInterface(..., wire="anthropic-messages")`` by
    another name, as :class:`llmplug.OpenAICompatible` is for ``openai-chat``."""

    default_wire = WIRE


@hookimpl
def build_request(wire: str, call: Call, key: str) -> HTTPRequest | None:
    return build_messages_request(call, key) if wire == WIRE else None


@hookimpl
def parse_stream(wire: str, call: Call) -> MessagesParser | None:
    return MessagesParser(call) if wire == WIRE else None
