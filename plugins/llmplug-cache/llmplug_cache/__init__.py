"""llmplug-cache: a response cache for llmplug's interfaces and groups.

``cache={"kind": "sqlite", "path": "~/.cache/llmplug/responses.db", "ttl": 86400}`` (or
``{"kind": "redis", "url": ..., "ttl": ...}``) on an interface, a group or a provider.json entry:
the same question is paid for once. See docs/cache.md.

This module is what the registry loads with every plugin, so it imports nothing heavy: the
cache itself (sqlite3, redis) is imported when an interface asks for one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from llmplug import hookimpl

if TYPE_CHECKING:
    from ._cache import ResponseCache

__all__ = ["FEATURE", "wrap_calls"]

#: The feature this plugin answers ``wrap_calls`` for: the ``cache=`` argument.
FEATURE = "cache"
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"feature": [FEATURE]}


@hookimpl
def wrap_calls(feature: str, config: Mapping[str, Any], owner: Any) -> ResponseCache | None:
    if feature != FEATURE:
        return None
    from ._cache import ResponseCache
    from ._settings import parse_settings

    return ResponseCache(parse_settings(config), owner)
