"""Numbers a provider sends (retry delays, rate-limit headers, token counts), made safe in one
place before anything acts on them.

A server, a proxy or an attacker in between can send ``Retry-After: inf``,
``x-ratelimit-reset-tokens: 1e999``, ``nan``, ``-5`` or a token count of 10**30. Acted on as is,
such a number rests a key forever, blocks a token budget forever, or raises (``int(inf)``) in
the middle of a reply's books. So every number read from a provider goes through
:func:`seconds` or :func:`count`: NaN, infinities, negatives and garbage are refused (None: as
if the provider had not said), and what is left is clamped to a range no real provider
exceeds. Wire plugins use them through :mod:`llmplug.wire`."""

from __future__ import annotations

import math

import msgspec

from ._types import Usage

__all__ = ["MAX_COUNT", "MAX_SECONDS", "count", "safe_usage", "seconds"]

MAX_SECONDS = 86_400.0
"""The longest a provider may rest a key or hold a call back: one day. The longest windows
providers state are daily quotas, which reset within a day; a key rested longer than that by a
broken header would be lost to the pool until the process restarts."""

MAX_COUNT = 10**12
"""The largest token or request count a provider may state. A thousand times the largest per-minute
token limit providers sell (about 10**9) and far above any context window, so no real count is
ever cut; and far below 2**53, so sums of counts stay exact as floats (the token budgets,
Redis's Lua numbers)."""


def _number(value: object) -> float | None:
    """``value`` as a finite, non-negative float; None for anything else. Accepts what parsers
    hold: an int, a float, a header's text, or the raw JSON of a body's field."""
    kind = type(value)
    if kind is float:
        n: float = value  # type: ignore[assignment]
    elif kind is int:
        # An int cannot be infinite, only huge (10**400 does not fit a float): clamped.
        return None if value < 0 else float(min(value, _HUGE))  # type: ignore[call-overload,operator]
    elif kind is str or kind is bytes or kind is _Raw:
        text: str | bytes = bytes(value) if kind is _Raw else value  # type: ignore[assignment,call-overload]
        try:
            n = float(text)  # takes surrounding whitespace, "inf", "nan": refused below
        except ValueError:
            n = _quoted(text)
        except OverflowError:
            return None
    elif value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    else:  # a subclass of int or float
        return _number(float(min(value, _HUGE)) if isinstance(value, int) else float(value))
    # NaN fails both comparisons, infinities the second.
    return n if 0.0 <= n < math.inf else None


_Raw = msgspec.Raw

#: Above every clamp: an int this big is clamped, not converted (10**400 overflows a float).
_HUGE = MAX_COUNT * 2


def _quoted(text: str | bytes) -> float:
    """A number sent as a JSON string (``"12"``), else NaN (refused)."""
    text = text.strip()
    if len(text) >= 2 and text[:1] in ('"', b'"') and text[-1:] == text[:1]:
        try:
            return float(text[1:-1])
        except (ValueError, OverflowError):
            pass
    return math.nan


def seconds(value: object) -> float | None:
    """A delay or a reset in seconds, within ``[0, MAX_SECONDS]``; None if ``value`` is not a
    finite, non-negative number."""
    n = _number(value)
    return None if n is None else min(n, MAX_SECONDS)


def count(value: object) -> int | None:
    """A count of tokens or requests, within ``[0, MAX_COUNT]`` (fractions dropped); None if
    ``value`` is not a finite, non-negative number."""
    kind = type(value)
    if kind is _Raw:
        value = bytes(value)  # type: ignore[call-overload]
        if not value:
            # A field the reply left out (a struct's empty default): not a number, and known
            # here without the two failed conversions below.
            return None
        kind = bytes
    if kind is int or kind is str or kind is bytes:
        # The usual case, once per reply and field: plain digits, read exactly.
        try:
            whole = int(value)  # type: ignore[call-overload]
        except ValueError:
            pass
        else:
            return whole if 0 <= whole <= MAX_COUNT else MAX_COUNT if whole > 0 else None
    n = _number(value)
    return None if n is None else int(min(n, MAX_COUNT))


def safe_usage(usage: Usage) -> Usage:
    """``usage`` with each count made safe, for a reply's books (the core applies it to what
    any wire plugin's parser returns). The same object when it already is."""
    i, o, t = usage.input_tokens, usage.output_tokens, usage.total_tokens
    c, r = usage.cached_tokens, usage.reasoning_tokens
    if (
        type(i) is int
        and type(o) is int
        and type(t) is int
        and type(c) is int
        and type(r) is int
        and min(i, o, t, c, r) >= 0
        and max(i, o, t, c, r) <= MAX_COUNT
    ):
        return usage
    i, o, t, c, r = (count(n) or 0 for n in (i, o, t, c, r))
    return Usage(
        input_tokens=i, output_tokens=o, total_tokens=t, cached_tokens=c, reasoning_tokens=r
    )
