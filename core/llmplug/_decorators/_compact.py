"""Keeping a chat inside the context window: summarize the oldest turns into one message."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from llmplug._limits._estimate import estimate_tokens
from llmplug._vocab._types import Message, Tool

from ._events import CompactionEvent

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["Compaction", "maybe_compact"]

_SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
_SUMMARIZE = (
    "Summarize the conversation below for the assistant who will continue it. Keep every fact, "
    "decision, name, number, open question and tool result that may matter later; drop "
    "pleasantries. Write plain prose, at most a few paragraphs."
)


class Compaction(msgspec.Struct, frozen=True):
    """When and how ``llm_chat`` compacts: once the estimated prompt passes ``threshold`` of
    the interface's ``context_window``, everything between the system prompt and the last
    ``keep_last`` messages becomes one summary message (a tool call is never split from its
    results). ``max_summary_tokens`` bounds the summary call's output."""

    threshold: float = 0.8
    keep_last: int = 6
    max_summary_tokens: int = 1024

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {self.keep_last}")


def _transcript(messages: list[Message]) -> str:
    lines = []
    for m in messages:
        text = m.text
        if m.tool_calls:
            calls = ", ".join(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
            text = f"{text}\n[called {calls}]".strip()
        who = "tool result" if m.role == "tool" else m.role
        lines.append(f"{who}: {text}")
    return "\n\n".join(lines)


async def maybe_compact(
    llm: LLMInterface | ModelGroup,
    messages: list[Message],
    tools: list[Tool] | None,
    config: Compaction,
) -> CompactionEvent | None:
    """Compact ``messages`` in place if the next call would pass the threshold."""
    before = estimate_tokens(messages, tools)
    if before <= config.threshold * llm.context_window:
        return None
    head = 0
    while head < len(messages) and messages[head].role in ("system", "developer"):
        head += 1
    cut = max(head, len(messages) - config.keep_last)
    # Never start the kept tail with tool results whose call would be summarized away.
    while cut > head and messages[cut].role == "tool":
        cut -= 1
    old = messages[head:cut]
    if len(old) < 2:
        return None  # nothing worth summarizing; the provider will say if it is too long
    summary = await llm.chat(
        [
            Message(role="system", content=_SUMMARIZE),
            Message(role="user", content=_transcript(old)),
        ],
        max_tokens=config.max_summary_tokens,
    )
    messages[head:cut] = [Message(role="user", content=_SUMMARY_PREFIX + summary.text)]
    return CompactionEvent(
        summary=summary.text,
        removed_messages=len(old),
        estimated_tokens_before=before,
        estimated_tokens_after=estimate_tokens(messages, tools),
    )
