"""SimpleLLMFunc's ``SimpleLLMFunc.type.message``: histories are lists of message dicts."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["MessageList", "MessageParam"]

MessageParam: TypeAlias = dict[str, Any]
MessageList: TypeAlias = list[dict[str, Any]]
