"""Token usage kept per interface: the last call's, and running totals."""

from __future__ import annotations

from ._types import Usage

__all__ = ["UsageTracker"]


class UsageTracker:
    """What an interface has spent. ``last`` is the latest result's usage (None if the server
    sent none); the totals add every result's usage."""

    __slots__ = (
        "cached_tokens",
        "calls",
        "input_tokens",
        "last",
        "output_tokens",
        "reasoning_tokens",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.last: Usage | None = None

    def add(self, usage: Usage | None) -> None:
        self.calls += 1
        self.last = usage
        if usage is not None:
            self.input_tokens += usage.input_tokens
            self.output_tokens += usage.output_tokens
            self.cached_tokens += usage.cached_tokens
            self.reasoning_tokens += usage.reasoning_tokens

    def total(self) -> Usage:
        return Usage(
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            total_tokens=self.input_tokens + self.output_tokens,
            cached_tokens=self.cached_tokens,
            reasoning_tokens=self.reasoning_tokens,
        )

    def __repr__(self) -> str:
        return f"UsageTracker(calls={self.calls}, total={self.total()!r})"
