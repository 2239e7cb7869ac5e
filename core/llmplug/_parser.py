"""The protocol a wire plugin's response parser follows (what ``parse_stream`` returns)."""

from __future__ import annotations

from typing import Protocol

from ._sse import SSEEvent
from ._types import Completion, StreamEvent

__all__ = ["StreamParser"]


class StreamParser(Protocol):
    """Turns one response into neutral events. Stateful: one parser per response.

    ``feed`` gets each SSE event in order and returns the events it produces (often none or one;
    never ``Done``, which the pipeline adds). It sets ``done`` when the wire format's terminator
    arrives; a stream that ends before that is truncated. ``result`` is the whole answer so far,
    used for ``Done`` and as the partial output of a failed stream. ``parse_body`` handles a whole
    non-streamed body. Errors are raised as :class:`llmplug.StreamError` or
    :class:`llmplug.ResponseError`."""

    done: bool

    def feed(self, event: SSEEvent) -> list[StreamEvent]: ...

    def result(self) -> Completion: ...

    def parse_body(self, body: bytes) -> Completion: ...
