"""The ``cache`` settings: the same keys in provider.json and in the ``cache=`` argument."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from llmplug import ConfigError, redact_url

__all__ = ["DEFAULT_PATH", "Settings", "parse_settings"]

DEFAULT_PATH = "~/.cache/llmplug/responses.db"


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``kind``: ``"sqlite"`` (one machine, the default) or ``"redis"`` (many).

    ``ttl``: seconds an answer is kept (None: until evicted). ``path``: the SQLite file.
    ``max_bytes``: the SQLite file's bound; the least recently used answers go first.
    ``busy_timeout``: how long a statement waits for another process's write to the file
    before the call goes on without the cache (writes are short: a longer wait means trouble).
    ``url``: the Redis server. ``prefix``: the Redis keys' prefix. ``lock``: identical calls
    on other processes wait for the one making the request (Redis only), for at most
    ``lock_ttl`` seconds."""

    kind: Literal["sqlite", "redis"] = "sqlite"
    ttl: float | None = None
    path: str = DEFAULT_PATH
    max_bytes: int = 1 << 30
    busy_timeout: float = 2.0
    url: str | None = None
    prefix: str = "llmplug:cache:"
    lock: bool = True
    lock_ttl: float = 30.0
    #: How long a Redis command may take before the call goes on without the cache.
    timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.ttl is not None and not self.ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds or null, got {self.ttl!r}")
        if not self.max_bytes > 0:
            raise ValueError(f"max_bytes must be > 0, got {self.max_bytes!r}")
        if not (self.lock_ttl > 0 and self.timeout > 0 and self.busy_timeout > 0):
            raise ValueError("lock_ttl, timeout and busy_timeout must be > 0 seconds")
        if self.kind == "redis" and not self.url:
            raise ValueError('kind "redis" needs a "url" (redis://host:6379/0)')

    @property
    def where(self) -> str:
        """What the store is, for messages: the file, or the Redis URL without its password."""
        if self.kind == "sqlite":
            return os.path.expanduser(self.path)
        return redact_url(self.url or "")


def parse_settings(config: Mapping[str, Any]) -> Settings:
    try:
        return msgspec.convert(dict(config), Settings)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"cache: {exc}", field="cache") from None
