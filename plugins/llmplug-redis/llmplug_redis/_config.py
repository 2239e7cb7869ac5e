"""``rate_limit_backend = {"kind": "redis", ...}``: checked, and turned into limiters."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any

import msgspec

from llmplug import APIKeyPool, ConfigError, TokenBucket, redact_url

from ._conn import Conn
from ._health import RedisKeyHealth
from ._limiter import RedisLimiter

__all__ = ["RedisBackend", "RedisConfig", "backend"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RedisConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    kind: str
    #: ``redis://``, ``rediss://`` (TLS), ``unix://``; ``${ENV}`` references are expanded.
    url: str
    #: Every key starts with it (several apps or environments on one Redis).
    prefix: str = "llmplug"
    #: ``fail``: raise RedisUnavailableError; ``local``: a local bucket at this process's share.
    on_unavailable: str = "fail"
    #: Seconds a Redis call may take before it counts as unavailable.
    timeout: float = 0.25
    #: Seconds between attempts to reach Redis again after a failure.
    retry_interval: float = 1.0
    #: How many processes share the budget: the local fallback takes capacity / this.
    expected_processes: int = 1
    #: Which budget: interfaces (of one provider) naming the same bucket share it.
    bucket: str | None = None
    #: Share key health (cooldowns, disables, in-flight leases) too.
    shared_health: bool = True
    #: Seconds an in-flight lease lives unless renewed (a killed process's expire after it).
    lease_ttl: float = 30.0
    #: A Redis Cluster (keys of one provider share a hash tag, so one slot).
    cluster: bool = False

    # The URL may hold the password (userinfo or ?password=): not in the repr, nor in rich's
    # pretty printing (which msgspec feeds from __rich_repr__).
    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            (f, redact_url(self.url) if f == "url" else getattr(self, f))
            for f in self.__struct_fields__
        ]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__rich_repr__())
        return f"RedisConfig({fields})"


def _expand(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        got = os.environ.get(m.group(1))
        if got is None:
            raise ConfigError(
                f"rate_limit_backend: environment variable ${{{m.group(1)}}} is not set"
            )
        return got

    return _ENV.sub(sub, value)


def parse(spec: Mapping[str, Any]) -> RedisConfig:
    try:
        conf = msgspec.convert(dict(spec), RedisConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"rate_limit_backend: {exc}") from None
    if conf.on_unavailable not in ("fail", "local"):
        raise ConfigError(
            f"rate_limit_backend: on_unavailable must be 'fail' or 'local', "
            f"got {conf.on_unavailable!r}"
        )
    for name in ("timeout", "retry_interval", "lease_ttl", "expected_processes"):
        if not getattr(conf, name) > 0:
            raise ConfigError(f"rate_limit_backend: {name} must be > 0")
    url = _expand(conf.url)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("rate_limit_backend: url must be redis://, rediss:// or unix://")
    return msgspec.structs.replace(conf, url=url)


_conns: dict[tuple[str, bool, float, float], Conn] = {}
_conns_lock = threading.Lock()


def _conn(conf: RedisConfig) -> Conn:
    """One connection per Redis per process, whichever interfaces use it."""
    key = (conf.url, conf.cluster, conf.timeout, conf.retry_interval)
    with _conns_lock:
        conn = _conns.get(key)
        if conn is None:
            conn = _conns[key] = Conn(
                conf.url,
                timeout=conf.timeout,
                retry_interval=conf.retry_interval,
                cluster=conf.cluster,
                options={},
            )
        return conn


def _tag(provider: str) -> str:
    # Braces would end the hash tag early: every key of a provider must hash to one slot.
    return provider.replace("{", "(").replace("}", ")")


class RedisBackend:
    """What the factory returns to the interface: its two limiters and the shared health."""

    def __init__(
        self,
        limiter: RedisLimiter,
        token_limiter: RedisLimiter | None,
        health: RedisKeyHealth | None,
    ) -> None:
        self.limiter = limiter
        self.token_limiter = token_limiter
        self.health = health


def backend(
    spec: Mapping[str, Any],
    *,
    pool: APIKeyPool,
    model: str,
    capacity: float,
    refill_rate: float,
    tokens_per_minute: int | None,
) -> RedisBackend:
    """The ``llmplug.backends`` entry point ``redis``."""
    conf = parse(spec)
    conn = _conn(conf)
    base = f"{conf.prefix}:{{{_tag(pool.provider_id)}}}"
    bucket = conf.bucket or model
    share = conf.expected_processes
    health: RedisKeyHealth | None = None
    if conf.shared_health:
        with pool.lock:
            got = pool.health
            if isinstance(got, RedisKeyHealth) and got.conn is conn:
                health = got
            else:
                health = RedisKeyHealth(conn, base, pool, conf.lease_ttl)
                pool.attach_health(health)
    limiter = RedisLimiter(
        conn,
        f"{base}:rate:{bucket}",
        capacity,
        refill_rate,
        on_unavailable=conf.on_unavailable,
        fallback=TokenBucket(max(1.0, capacity / share), refill_rate / share),
        health=health,
    )
    tpm = None
    if tokens_per_minute:
        tpm = RedisLimiter(
            conn,
            f"{base}:tpm:{bucket}",
            tokens_per_minute,
            tokens_per_minute / 60.0,
            on_unavailable=conf.on_unavailable,
            fallback=TokenBucket(tokens_per_minute / share, tokens_per_minute / 60.0 / share),
        )
    return RedisBackend(limiter, tpm, health)
