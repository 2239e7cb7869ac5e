"""What is worth retrying, and how long to wait: the rules of the reference, in one place."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from ._numbers import seconds

__all__ = [
    "MAX_SERVER_DELAY",
    "ServerError",
    "backoff_delay",
    "is_retryable_status",
    "parse_error_body",
    "parse_go_duration",
    "server_delay",
]

#: A server-directed delay above this is not waited for: rotate or fail instead.
MAX_SERVER_DELAY = 120.0
_MAX_BACKOFF = 8.0


def is_retryable_status(status: int, headers: Mapping[str, str]) -> bool:
    """408, 409, 429 and 5xx, unless the server says otherwise with ``x-should-retry``."""
    should = headers.get("x-should-retry")
    if should == "true":
        return True
    if should == "false":
        return False
    return status in (408, 409, 429) or status >= 500


def server_delay(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, then ``retry-after`` in seconds
    or as an HTTP date), or None if it did not say or said something unusable (NaN, infinite,
    negative: see :mod:`llmplug._vocab._numbers`). At most
    :data:`llmplug._vocab._numbers.MAX_SECONDS`; a date in the past is 0."""
    ms = seconds(headers.get("retry-after-ms"))
    if ms is not None:
        return seconds(ms / 1000.0)
    ra = headers.get("retry-after")
    if ra is None:
        return None
    told = seconds(ra)
    if told is not None or _looks_numeric(ra):
        return told
    import email.utils  # on use: it brings socket, and HTTP dates are rare here

    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds(max(0.0, when.timestamp() - time.time()))


def _looks_numeric(text: str) -> bool:
    # "-5", "inf", "nan" are numbers refused, not dates to try.
    try:
        float(text)
    except (ValueError, OverflowError):
        return False
    return True


def backoff_delay(retries_so_far: int, base: float) -> float:
    """Exponential backoff with jitter, ``base`` being the first step (openai-python's shape)."""
    cap = max(_MAX_BACKOFF, base)
    return min(base * 2.0**retries_so_far, cap) * (1.0 - 0.25 * random.random())


_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")


def parse_go_duration(text: str) -> float | None:
    """``1s``, ``6m0s``, ``12ms``, ``1h2m3.5s`` (Go durations, as in ``x-ratelimit-reset-*``)
    or a bare number of seconds, made safe by :func:`llmplug._vocab._numbers.seconds`. None if it is
    neither, or not a finite, non-negative number."""
    try:
        return seconds(float(text))
    except ValueError:
        pass
    except OverflowError:
        return None
    text = text.strip()
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return seconds(total) if pos == len(text) and pos > 0 else None


class _ErrorObj(msgspec.Struct):
    message: Any = None
    type: Any = None
    code: Any = None
    param: Any = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorObj | str | None = None
    message: Any = None
    detail: Any = None


_error_decoder = msgspec.json.Decoder(_ErrorBody)


class ServerError(msgspec.Struct):
    """The useful part of an error body: message, type and code (each may be missing)."""

    message: str
    type: str | None = None
    code: str | int | None = None


def _text(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else str(v)


def _code(v: Any) -> str | int | None:
    return v if isinstance(v, (str, int)) and not isinstance(v, bool) else _text(v)


def parse_error_body(body: bytes, status: int, reason: str = "") -> ServerError:
    """Read ``{"error": {...}}`` and its common variants; for anything else (an HTML page from a
    proxy, an empty body) keep a short excerpt so the error still says what came back."""
    try:
        parsed = _error_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        parsed = None
    if parsed is not None:
        err = parsed.error
        if isinstance(err, _ErrorObj) and err.message is not None:
            return ServerError(_text(err.message) or "", _text(err.type), _code(err.code))
        if isinstance(err, str):
            return ServerError(err)
        for v in (parsed.message, parsed.detail):
            if v is not None:
                return ServerError(v if isinstance(v, str) else msgspec.json.encode(v).decode())
    excerpt = body[:300].decode("utf-8", "replace").strip()
    if not excerpt:
        return ServerError(f"HTTP {status} {reason}".strip() + " with an empty body")
    return ServerError(f"HTTP {status} {reason}".strip() + f": {excerpt}")
