"""llmplug-redis: rate limits and key health shared by every process through Redis.

Installed with ``pip install 'llmplug[redis]'``; chosen per interface with
``rate_limit_backend={"kind": "redis", "url": ...}`` (provider.json or the constructor)."""

from __future__ import annotations

from collections.abc import Awaitable

from llmplug import hookimpl

from ._config import RedisBackend, RedisConfig, backend
from ._conn import RedisUnavailableError
from ._health import RedisKeyHealth
from ._limiter import RedisLimiter

__all__ = [
    "RedisBackend",
    "RedisConfig",
    "RedisKeyHealth",
    "RedisLimiter",
    "RedisUnavailableError",
    "acquire_rate",
    "backend",
]

#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"limiter": ["redis"]}


@hookimpl
def acquire_rate(limiter: object, cost: float) -> Awaitable[None] | None:
    """The limiter kind ``redis``."""
    if isinstance(limiter, RedisLimiter):
        return limiter.acquire(cost)
    return None
