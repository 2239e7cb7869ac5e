"""Events that ``llm_chat`` yields (besides the stream's TextDelta and ReasoningDelta)."""

from __future__ import annotations

from typing import Any

import msgspec

from llmplug._vocab._types import Completion, ToolCall, Usage

from ._tool import ToolResult

__all__ = [
    "AssistantReply",
    "ChatDone",
    "ChatEvent",
    "CompactionEvent",
    "ToolCallEvent",
    "ToolResultEvent",
]


class AssistantReply(msgspec.Struct, tag="reply", frozen=True):
    """One whole model turn (when not streaming): its text and the full Completion."""

    text: str
    completion: Completion


class ToolCallEvent(msgspec.Struct, tag="tool_call_request", frozen=True):
    """The model asked for a tool call; it runs next (all calls of a turn run concurrently)."""

    call: ToolCall


class ToolResultEvent(msgspec.Struct, tag="tool_result", frozen=True):
    """A tool call's result (or error), as it goes back to the model."""

    result: ToolResult


class CompactionEvent(msgspec.Struct, tag="compaction", frozen=True):
    """The oldest turns were summarized into one message to stay inside the context window."""

    summary: str
    removed_messages: int
    estimated_tokens_before: int
    estimated_tokens_after: int


class ChatDone(msgspec.Struct, tag="chat_done", frozen=True):
    """The last event: the final reply, the usage of every call this turn made, and the
    updated history (a new list; the caller's history is left as it was)."""

    reply: str
    usage: Usage
    history: list[dict[str, Any]]
    completion: Completion


ChatEvent = AssistantReply | ToolCallEvent | ToolResultEvent | CompactionEvent | ChatDone
"""What ``agent.events(...)`` of an ``@llm_chat`` agent yields besides the text and reasoning
deltas of a streamed reply; ``ChatDone`` comes last."""
