"""Prices per million tokens, and what a reply cost."""

from __future__ import annotations

from typing import Any

import msgspec

from ._errors import ConfigError
from ._types import Usage

__all__ = ["Pricing"]


class Pricing(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model's prices in currency units (usually USD) per million tokens.

    ``cached_input`` prices the cached part of the input; None: cached tokens cost ``input``."""

    input: float
    output: float
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not value >= 0):
                raise ConfigError(f"pricing must have {name} >= 0, got {value!r}")

    def cost(self, usage: Usage) -> float:
        """What ``usage`` cost: cached input at its price, the rest of the input and the whole
        output (reasoning included: it is part of it) at theirs."""
        cached = min(usage.cached_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (usage.input_tokens - cached) * self.input
            + cached * cached_price
            + usage.output_tokens * self.output
        ) / 1_000_000


def as_pricing(value: Any) -> Pricing | None:
    """A ``Pricing`` from itself or a mapping (provider.json's ``pricing``); None stays None."""
    if value is None or isinstance(value, Pricing):
        return value
    try:
        return msgspec.convert(value, Pricing)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"pricing must be {{input, output, cached_input?}}: {exc}") from None
