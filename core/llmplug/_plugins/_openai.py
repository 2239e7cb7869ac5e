"""What the parsers of the two OpenAI wires (Chat Completions, Responses) share: the text,
reasoning and refusal a stream gathers, decoding bound to one call, the usage counts and the
error object.

A helper module of the ``openai-chat`` and ``openai-responses`` plugins, not a plugin itself."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from llmplug import Call, Completion, ToolCall, Usage
from llmplug.wire import count, decode_body, decode_event, openai_rate_limits

__all__ = [
    "NO_COUNT",
    "Error",
    "OpenAIParser",
    "RawCount",
    "TokenDetails",
    "stream_error_status",
    "usage",
]

#: The HTTP status each of OpenAI's error names stands for (a Responses ``error`` event's or
#: ``response.failed``'s ``code``, a Chat error object's ``type``).
_STATUS_OF_NAME = {
    "invalid_request_error": 400,
    "invalid_prompt": 400,
    "rate_limit_exceeded": 429,
    "server_error": 500,
}


class Error(msgspec.Struct):
    """OpenAI's error object, in a body or a stream event; any JSON type in each field."""

    message: Any = None
    type: Any = None
    code: Any = None


def stream_error_status(code: Any, type_: Any = None) -> int | None:
    """The HTTP status an error inside a stream stands for: a numeric ``code`` (OpenRouter
    puts the status it would have sent there), else OpenAI's name for it in ``code`` or
    ``type``. An error before any output is then retried exactly as ``chat()`` retries that
    status, and a group moves it on the same way; None (unknown) is never retried."""
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    for name in (code, type_):
        if isinstance(name, str) and name in _STATUS_OF_NAME:
            return _STATUS_OF_NAME[name]
    return None


#: A token count as the server wrote it (any JSON: 12, 1e999, "12", -5), read by
#: :func:`llmplug.wire.count`: a count the decoder would refuse must not cost the answer.
RawCount = msgspec.Raw
NO_COUNT = msgspec.Raw()


class TokenDetails(msgspec.Struct):
    """The breakdown OpenAI puts beside a count (``prompt_tokens_details``,
    ``input_tokens_details`` and their output twins); each side uses one of the two fields."""

    cached_tokens: RawCount = NO_COUNT
    reasoning_tokens: RawCount = NO_COUNT


def usage(
    inp: RawCount,
    out: RawCount,
    total: RawCount,
    inp_details: TokenDetails | None,
    out_details: TokenDetails | None,
) -> Usage:
    """Neutral usage from OpenAI's counts, whichever wire named them; a missing total is the
    sum (some compatible servers leave it out). A count that is not a finite, non-negative
    number is missing (see :func:`llmplug.wire.count`)."""
    i, o, t = count(inp) or 0, count(out) or 0, count(total)
    return Usage(
        input_tokens=i,
        output_tokens=o,
        total_tokens=t if t is not None else i + o,
        cached_tokens=(count(inp_details.cached_tokens) or 0) if inp_details else 0,
        reasoning_tokens=(count(out_details.reasoning_tokens) or 0) if out_details else 0,
    )


class OpenAIParser:
    """The state and helpers of one response's parser on an OpenAI wire (see
    :class:`llmplug.StreamParser`); a subclass reads its wire's events into ``_text``,
    ``_reasoning`` and ``_refusal`` and says how it ended in :meth:`result`."""

    #: OpenAI streams SSE and states its limits in ``x-ratelimit-*`` headers.
    framing = "sse"
    rate_limits = staticmethod(openai_rate_limits)
    #: The API's name in the error for a body that is not its JSON.
    api: ClassVar[str]

    __slots__ = ("_call", "_reasoning", "_refusal", "_text", "done")

    def __init__(self, call: Call) -> None:
        self._call = call
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self.done = False

    def result(self) -> Completion:
        raise NotImplementedError

    def _strict_event(self, decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
        return decode_event(decoder, data, self._call, self.result)

    def _strict_body(self, decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
        return decode_body(decoder, data, self._call, self.api)

    def _streamed(
        self,
        calls: list[ToolCall],
        finish: str | None,
        usage: Usage | None,
        model: str | None,
        response_id: str | None = None,
    ) -> Completion:
        """The answer so far: what the stream gathered, with how it ended."""
        return Completion(
            text="".join(self._text),
            tool_calls=calls,
            reasoning="".join(self._reasoning) or None,
            finish_reason=finish,
            usage=usage,
            refusal="".join(self._refusal) or None,
            model=model,
            response_id=response_id,
        )
