"""What a provider's rate-limit headers say, in neutral terms, and OpenAI's way of saying it.

A wire plugin's parser reads its own provider's headers (``rate_limits(headers)``); the core
acts on the neutral :class:`RateLimits` only, so a wire with other header names (Anthropic's
``anthropic-ratelimit-*``) rests a used-up key exactly like OpenAI's ``x-ratelimit-*`` does."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from ._numbers import MAX_COUNT, MAX_SECONDS, count, seconds
from ._retry import parse_go_duration

__all__ = ["RateLimits", "openai_rate_limits"]


class RateLimits(msgspec.Struct, kw_only=True, frozen=True):
    """What is left of a key's window and when it resets. Each field may be unknown (None).

    Resets are seconds from now, whatever the provider sends (a duration, a timestamp). Every
    field is made safe when the struct is made, whoever makes it (a wire plugin's parser
    included): counts as :func:`llmplug._vocab._numbers.count`, resets as
    :func:`llmplug._vocab._numbers.seconds` (NaN, infinite or negative: unknown)."""

    remaining_requests: float | None = None
    remaining_tokens: float | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    def __post_init__(self) -> None:
        if (
            _fine(self.remaining_requests, MAX_COUNT)
            and _fine(self.remaining_tokens, MAX_COUNT)
            and _fine(self.reset_requests, MAX_SECONDS)
            and _fine(self.reset_tokens, MAX_SECONDS)
        ):
            return  # read by count() / seconds() already, as the parsers do
        for name, safe in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                msgspec.structs.force_setattr(self, name, safe(value))

    @property
    def reset(self) -> float | None:
        """When the window resets: the later of the two resets that are known and positive."""
        known = [r for r in (self.reset_requests, self.reset_tokens) if r is not None and r > 0]
        return max(known) if known else None

    @property
    def used_up(self) -> bool:
        """Nothing is left of the requests or of the tokens."""
        return self.remaining_requests == 0 or self.remaining_tokens == 0


def _fine(value: float | None, most: float) -> bool:
    return value is None or (type(value) in (int, float) and 0 <= value <= most)


_FIELDS = (
    ("remaining_requests", count),
    ("remaining_tokens", count),
    ("reset_requests", seconds),
    ("reset_tokens", seconds),
)


def _duration(value: str | None) -> float | None:
    return parse_go_duration(value) if value else None


def openai_rate_limits(headers: Mapping[str, str]) -> RateLimits | None:
    """OpenAI's ``x-ratelimit-remaining-requests`` / ``-tokens`` (numbers) and
    ``x-ratelimit-reset-requests`` / ``-tokens`` (Go durations such as ``6m0s``); None when the
    reply has none of them. The core reads these when a parser offers no ``rate_limits``."""
    rem_req = headers.get("x-ratelimit-remaining-requests")
    rem_tok = headers.get("x-ratelimit-remaining-tokens")
    reset_req = headers.get("x-ratelimit-reset-requests")
    reset_tok = headers.get("x-ratelimit-reset-tokens")
    if rem_req is None and rem_tok is None and reset_req is None and reset_tok is None:
        return None
    return RateLimits(
        remaining_requests=count(rem_req),
        remaining_tokens=count(rem_tok),
        reset_requests=_duration(reset_req),
        reset_tokens=_duration(reset_tok),
    )
