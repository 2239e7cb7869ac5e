"""SimpleLLMFunc's ``SimpleLLMFunc.type.tool_call``: a tool call as the OpenAI Chat shape's dict
(``{"id", "type": "function", "function": {"name", "arguments"}}``)."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["ToolCall", "ToolCallArguments", "ToolDefinitionList"]

ToolCall: TypeAlias = dict[str, Any]
ToolCallArguments: TypeAlias = dict[str, Any]
ToolDefinitionList: TypeAlias = list[dict[str, Any]] | None
