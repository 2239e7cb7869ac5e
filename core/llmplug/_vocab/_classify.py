"""What an error response means, in neutral terms: the one thing the core decides retries,
cooldowns and failover from.

A wire's parser may read its own provider's error bodies (``classify_error``); when it offers
none, or answers None, :func:`classify_openai` reads the OpenAI shape. Either way the core acts
on an :class:`ErrorInfo` only, so a provider that says "bad key" with a 400 (Gemini's
``API_KEY_INVALID``) or its retry delay in the body (Gemini's ``RetryInfo``) is treated like
OpenAI saying it with a 401 or a ``retry-after`` header."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, get_args

import msgspec

from ._retry import is_retryable_status, parse_error_body, server_delay

if TYPE_CHECKING:
    from ._errors import LLMError

__all__ = [
    "ERROR_KINDS",
    "ErrorInfo",
    "ErrorKind",
    "classify_openai",
    "kind_by_status",
    "kind_of",
    "mentions_context_overflow",
    "mentions_schema",
]

ErrorKind = Literal[
    "rate_limit", "quota", "auth", "context_length", "schema_unsupported", "bad_request", "server"
]
"""What went wrong, as far as retries, cooldowns and failover care:

- ``rate_limit``: too many requests or tokens for now; the key rests for the retry delay
  and another key (or the same one after the delay) is tried.
- ``quota``: the key's quota or credit is gone; the key leaves rotation (for the retry delay
  when there is one, else an hour).
- ``auth``: the key is refused (revoked, invalid, not allowed); it leaves rotation.
- ``context_length``: the prompt does not fit the model; not retried, a group moves it to a
  member with a larger context.
- ``schema_unsupported``: the provider cannot do typed output (``response_format``); not
  retried, ``@llm_function`` asks for the shape in the prompt instead.
- ``bad_request``: the request is wrong; not retried.
- ``server``: the server failed or is overloaded, transiently; retried with backoff (or
  after the retry delay), a group moves on."""
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
"""Every :data:`ErrorKind`, for a plugin's checks and tests."""


class ErrorInfo(msgspec.Struct, kw_only=True, frozen=True):
    """One error response, classified by the wire that knows its provider.

    ``retry_after`` is the seconds the provider asked for, from its headers or its body (None:
    it did not say). ``code`` is the provider's own code (``RESOURCE_EXHAUSTED``,
    ``insufficient_quota``), not the HTTP status. ``message`` is the provider's text."""

    kind: ErrorKind
    message: str
    code: str | int | None = None
    type: str | None = None
    retry_after: float | None = None


_OVERFLOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|exceeds? the context", re.I
)
_SCHEMA = ("response_format", "json_schema", "text.format", "structured")


def mentions_context_overflow(text: str) -> bool:
    """Whether an error's words say the prompt does not fit (OpenAI's, vLLM's and llama.cpp's
    wording)."""
    return bool(_OVERFLOW.search(text))


def mentions_schema(text: str) -> bool:
    """Whether an error's words are about typed output (``response_format``, ``json_schema``)."""
    text = text.lower()
    return any(w in text for w in _SCHEMA)


def kind_by_status(status: int, headers: Mapping[str, str] | None = None) -> ErrorKind:
    """The kind an HTTP status stands for when nothing more is known."""
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "quota"
    if status == 429:
        return "rate_limit"
    if is_retryable_status(status, headers or {}):
        return "server"
    return "bad_request"


def classify_openai(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    """An OpenAI-shaped error response (``{"error": {"message", "type", "code"}}`` and its
    common variants) classified: what the core does for a wire whose parser has no
    ``classify_error`` of its own."""
    err = parse_error_body(body, status)
    words = f"{err.code} {err.type}"
    kind = kind_by_status(status, headers)
    if "insufficient_quota" in words:
        kind = "quota"
    elif status in (400, 413, 422) and (
        err.code == "context_length_exceeded" or mentions_context_overflow(err.message)
    ):
        kind = "context_length"
    elif status in (400, 422) and mentions_schema(f"{err.message} {words}"):
        kind = "schema_unsupported"
    return ErrorInfo(
        kind=kind,
        message=err.message,
        code=err.code,
        type=err.type,
        retry_after=server_delay(headers),
    )


def kind_of(error: LLMError) -> ErrorKind | None:
    """The error's kind: as its wire classified it, else as its status and code say (a
    parser's ``StreamError`` with only a status, an error made before this contract). None for
    an error with neither (a connection error, a cut stream)."""
    if error.kind is not None:
        return error.kind
    if error.code == "context_length_exceeded":
        return "context_length"
    status = error.status
    if status is None:
        return None
    words = f"{error.code} {error.type}"
    if "insufficient_quota" in words:
        return "quota"
    if status in (400, 413, 422):
        if mentions_context_overflow(error.message):
            return "context_length"
        if status != 413 and mentions_schema(f"{error.message} {words}"):
            return "schema_unsupported"
    return kind_by_status(status, error.headers)
