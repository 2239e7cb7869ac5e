"""The protocol a wire plugin's response parser follows (what ``parse_stream`` returns)."""

from __future__ import annotations

from typing import Literal, Protocol

from llmplug._vocab._types import Completion, StreamEvent

from ._sse import SSEEvent

__all__ = ["FRAMINGS", "Framing", "StreamParser"]

Framing = Literal["sse", "ndjson", "json"]
"""How a streamed body is cut into the pieces ``feed`` gets: ``"sse"`` (Server-Sent Events; the
default), ``"ndjson"`` (one JSON document per line, as the event's ``data``) or ``"json"`` (one
whole body even when streaming: ``parse_body``, then the core replays it as events)."""
FRAMINGS: tuple[Framing, ...] = ("sse", "ndjson", "json")


class StreamParser(Protocol):
    """Turns one response into neutral events. Stateful: one parser per response.

    ``feed`` gets each framed piece in order as an :class:`llmplug.SSEEvent` (for NDJSON: an
    empty ``event`` and the line as ``data``) and returns the events it produces (often none or
    one; never ``Done``, which the pipeline adds). It sets ``done`` when the wire format's
    terminator arrives; a stream that ends before that is truncated. ``result`` is the whole
    answer so far, used for ``Done`` and as the partial output of a failed stream.
    ``parse_body`` handles a whole non-streamed body. Errors are raised as
    :class:`llmplug.StreamError` or :class:`llmplug.ResponseError`; anything else a parser
    raises reaches the user as a :class:`llmplug.PluginError`.

    Four members are optional, read with ``getattr`` once per response: ``framing`` (a
    :data:`Framing`; ``"sse"`` when absent), ``complete`` (a bool the parser sets when the
    answer is whole, its finish reason having come, on a wire whose stream has no end marker:
    the core reads on to the end of the body, for a trailing usage chunk, and a stream that
    ends, or breaks, after it is not truncated), ``rate_limits(headers) -> RateLimits | None``
    (when absent, the core reads OpenAI's ``x-ratelimit-*`` headers) and
    ``classify_error(status, headers, body) -> ErrorInfo | None`` (what an error response
    means; when absent or None, the core reads OpenAI's error shape). docs/plugins.md has the
    whole contract."""

    done: bool

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """The events one framed piece of the stream produces (often none or one)."""

    def result(self) -> Completion:
        """The whole answer so far."""

    def parse_body(self, body: bytes) -> Completion:
        """The answer of a whole, non-streamed body."""
