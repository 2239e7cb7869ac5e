"""The default rate limiter: :class:`llmplug.TokenBucket`, one per interface."""

from __future__ import annotations

from collections.abc import Awaitable

from llmplug import TokenBucket, hookimpl

__all__ = ["acquire_rate"]

#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"limiter": ["token_bucket"]}


@hookimpl(trylast=True)
def acquire_rate(limiter: object, cost: float) -> Awaitable[None] | None:
    if isinstance(limiter, TokenBucket):
        return limiter.acquire(cost)
    return None
