"""Token estimates without a tokenizer, for compaction and the tokens-per-minute budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from llmplug._vocab._types import ImagePart, Message, Tool

__all__ = ["estimate_call_tokens", "estimate_tokens"]

_encode = msgspec.json.Encoder().encode
_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# What an image costs a model is bounded, whatever the length of its URL (a data: URL is the
# file itself, megabytes of it): this many tokens, above what large high-detail images cost.
_IMAGE_TOKENS = 1_600


def estimate_tokens(messages: list[Message], tools: list[Tool] | None = None) -> int:
    """About 4 bytes of JSON per token, plus per-message overhead: deliberately on the high
    side, so budgets and compaction act before the provider refuses."""
    size = len(_encode(messages)) + (len(_encode(tools)) if tools else 0)
    images = url_bytes = 0
    for m in messages:
        if isinstance(m.content, list):
            for p in m.content:
                if isinstance(p, ImagePart):
                    images += 1
                    url_bytes += len(p.image_url.url)
    return (size - url_bytes) // 4 + 4 * len(messages) + images * _IMAGE_TOKENS


def estimate_call_tokens(
    messages: list[Message], tools: list[Tool] | None, params: Mapping[str, Any]
) -> int:
    """What a call may spend: the prompt estimate plus the output limit it asks for."""
    limit = next((params[k] for k in _OUTPUT_LIMITS if isinstance(params.get(k), int)), 0)
    return estimate_tokens(messages, tools) + limit
