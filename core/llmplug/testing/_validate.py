"""Each wire's request shapes, checked as its server would: a malformed request is answered
400, so a wire plugin that builds one fails its tests the way it would fail in production."""

from __future__ import annotations

from typing import Any

from . import _gemini as gemini
from ._replies import RecordedRequest

__all__ = ["malformed"]


def _chat(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            return f"messages[{i}]: 'role' is required"
        for j, tc in enumerate(m.get("tool_calls") or ()):
            if not isinstance(tc, dict) or tc.get("type") != "function":
                return f"messages[{i}].tool_calls[{j}]: 'type' must be 'function'"
            if "provider_data" in tc:
                return f"messages[{i}].tool_calls[{j}]: unknown field 'provider_data'"
        if "provider_data" in m:
            return f"messages[{i}]: unknown field 'provider_data'"
    return None


def _responses(body: dict[str, Any]) -> str | None:
    if "input" not in body:
        return "'input' is required"
    return None


def _anthropic(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: field required (a non-empty list)"
    if not isinstance(body.get("max_tokens"), int):
        return "max_tokens: field required"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be 'user' or 'assistant'"
    return None


def malformed(rec: RecordedRequest) -> str | None:
    """Why the request's body is malformed for its wire (what its server would say with a
    400), or None. Requests to a path of no known wire are not checked."""
    body = rec.json
    if not isinstance(body, dict):
        return None
    if rec.api == "gemini":
        return gemini.malformed(body)
    if rec.api == "chat":
        return _chat(body)
    if rec.api == "responses":
        return _responses(body)
    if rec.api == "anthropic":
        return _anthropic(body)
    return None
