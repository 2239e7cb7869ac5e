"""Token estimates without a tokenizer, for compaction and the tokens-per-minute budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ._types import Message, Tool

__all__ = ["estimate_call_tokens", "estimate_tokens"]

_encode = msgspec.json.Encoder().encode
_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def estimate_tokens(messages: list[Message], tools: list[Tool] | None = None) -> int:
    """About 4 bytes of JSON per token, plus per-message overhead: deliberately on the high
    side, so budgets and compaction act before the provider refuses."""
    size = len(_encode(messages)) + (len(_encode(tools)) if tools else 0)
    return size // 4 + 4 * len(messages)


def estimate_call_tokens(
    messages: list[Message], tools: list[Tool] | None, params: Mapping[str, Any]
) -> int:
    """What a call may spend: the prompt estimate plus the output limit it asks for."""
    limit = next((params[k] for k in _OUTPUT_LIMITS if isinstance(params.get(k), int)), 0)
    return estimate_tokens(messages, tools) + limit
