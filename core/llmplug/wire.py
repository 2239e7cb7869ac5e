"""Helpers for wire format plugins: decode a payload into typed Structs, failing with the
documented errors only (``StreamError`` for a stream event, ``ResponseError`` for a body),
and make every number a provider sends safe (:func:`count` for tokens and requests,
:func:`seconds` for delays and resets: NaN, infinities and negatives refused, the rest clamped
to :data:`MAX_COUNT` / :data:`MAX_SECONDS`).

The default ``openai-chat`` and ``openai-responses`` plugins use these exactly as a third-party
plugin would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from ._vocab._call import Call
from ._vocab._classify import classify_openai, kind_by_status
from ._vocab._errors import ResponseError, StreamError
from ._vocab._numbers import MAX_COUNT, MAX_SECONDS, count, safe_usage, seconds
from ._vocab._ratelimits import RateLimits, openai_rate_limits
from ._vocab._types import Completion, events_of
from ._wire._per_loop import PerLoop

__all__ = [
    "JSON_ERRORS",
    "MAX_COUNT",
    "MAX_SECONDS",
    "PerLoop",
    "RateLimits",
    "classify_openai",
    "count",
    "decode_body",
    "decode_event",
    "events_of",
    "kind_by_status",
    "openai_rate_limits",
    "provider_data",
    "provider_data_of",
    "safe_usage",
    "seconds",
    "text_of",
]

T = TypeVar("T")

JSON_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
"""What decoding untrusted JSON can raise: msgspec raises UnicodeDecodeError for invalid UTF-8
inside a string and RecursionError for absurd nesting; to a client all are malformed JSON."""


def provider_data_of(holder: Any, wire: str) -> Any:
    """What the wire ``wire`` kept with ``holder`` (a :class:`llmplug.Message`, a
    :class:`llmplug.MessageToolCall`, a :class:`llmplug.ToolCall`), or None: another wire's
    entry is not yours, and a history saved as JSON brings it back as plain JSON values."""
    data = getattr(holder, "provider_data", None)
    return data.get(wire) if isinstance(data, dict) else None


def provider_data(wire: str, value: Any) -> dict[str, Any] | None:
    """``value`` as the provider data of ``wire`` (None stays None), for a ``Completion``'s
    or a ``ToolCall``'s ``provider_data``."""
    return None if value is None else {wire: value}


def text_of(value: Any) -> str:
    """A server-sent value (an error message, a code) as text, whatever its JSON type."""
    if isinstance(value, str) or value is None:
        return value or ""
    try:
        return str(value)
    except RecursionError:  # a nesting msgspec could decode but str() cannot print
        return f"<unprintable {type(value).__name__}>"


def decode_event(
    decoder: msgspec.json.Decoder[T], data: bytes, call: Call, partial: Callable[[], Completion]
) -> T:
    """Decode one stream event's data; bad JSON raises :class:`llmplug.StreamError` carrying
    ``partial()``, the output that arrived before it."""
    try:
        return decoder.decode(data)
    except JSON_ERRORS as exc:
        raise StreamError(
            f"invalid JSON in a stream event: {exc}; event data starts {data[:80]!r}",
            partial=partial(),
            provider=call.provider,
            model=call.model,
        ) from None


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes, call: Call, api: str) -> T:
    """Decode a whole 2xx body; anything else than the ``api``'s JSON raises
    :class:`llmplug.ResponseError` with an excerpt of what came. A leading UTF-8 BOM is
    dropped (RFC 8259 lets parsers ignore it; some proxies add one; msgspec refuses it)."""
    if body[:3] == b"\xef\xbb\xbf":
        body = body[3:]
    try:
        return decoder.decode(body)
    except JSON_ERRORS as exc:
        raise ResponseError(
            f"the reply is not a {api} JSON body ({exc}): {body[:200]!r}",
            provider=call.provider,
            model=call.model,
            status=200,
        ) from None
