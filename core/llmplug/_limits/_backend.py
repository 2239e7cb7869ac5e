"""``rate_limit_backend``: limiters (and shared key health) kept outside the process.

The core knows no backend: a ``{"kind": ...}`` mapping names a factory in the entry-point
group ``llmplug.backends`` (``llmplug[redis]`` installs ``redis``). The factory is only looked
up when an interface names a backend, so ``import llmplug`` stays as fast as before."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from llmplug._vocab._errors import ConfigError

if TYPE_CHECKING:
    from ._keys import APIKeyPool

__all__ = ["BACKEND_GROUP", "Backend", "build_backend"]

BACKEND_GROUP = "llmplug.backends"


class Backend(Protocol):
    """What a backend factory returns: the limiters the interface uses."""

    limiter: object
    token_limiter: object | None


def build_backend(
    spec: Mapping[str, Any],
    *,
    pool: APIKeyPool,
    model: str,
    capacity: float,
    refill_rate: float,
    tokens_per_minute: int | None,
) -> Backend | None:
    """The backend ``spec`` names, or None for ``{"kind": "local"}`` (the in-process bucket)."""
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"rate_limit_backend must be an object with a 'kind', got {type(spec).__name__}"
        )
    kind = spec.get("kind")
    if kind == "local":
        return None
    if not isinstance(kind, str) or not kind:
        raise ConfigError("rate_limit_backend must name its 'kind' (e.g. \"redis\")")
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=BACKEND_GROUP) if ep.name == kind]
    if not found:
        hint = " (pip install 'llmplug[redis]')" if kind == "redis" else ""
        raise ConfigError(f"rate_limit_backend: no installed plugin provides {kind!r}{hint}")
    factory = found[0].load()
    backend: Backend = factory(
        dict(spec),
        pool=pool,
        model=model,
        capacity=capacity,
        refill_rate=refill_rate,
        tokens_per_minute=tokens_per_minute,
    )
    return backend
