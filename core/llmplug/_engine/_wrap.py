"""Features that wrap whole calls (a response cache): what the ``wrap_calls`` hook answers.

An interface or a group made without such a feature holds no wrapper, and its calls run exactly
as before (one ``is None`` test per call)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from llmplug._vocab._errors import ConfigError

from ._blame import plugin_error, raising_plugin

if TYPE_CHECKING:
    from llmplug._vocab._call import Call
    from llmplug._vocab._types import Completion, StreamEvent

    from ._registry import Registry

__all__ = ["CallWrapper", "make_wrapper"]

Complete = Callable[["Call"], Awaitable["Completion"]]
Stream = Callable[["Call"], AsyncGenerator["StreamEvent", None]]


class CallWrapper(Protocol):
    """What a ``wrap_calls`` plugin returns: it gets every call of its owner with the way to
    make it (``run``), and decides whether and how to run it. A response cache answers a hit
    without calling ``run`` (no rate-limit token, no key lease, no request) and keeps what
    ``run`` returned.

    ``call`` is the call as the interface built it (for a group: ``wire="group"``, the group's
    name as ``model``, and its params without the client options). ``run`` may be called more
    than once, or not at all."""

    async def complete(self, call: Call, run: Complete) -> Completion:
        """The answer of ``call`` (``chat``)."""
        ...

    def stream(self, call: Call, run: Stream) -> AsyncGenerator[StreamEvent, None]:
        """The events of ``call`` (``chat_stream``), ending with one ``Done``."""
        ...


def make_wrapper(
    registry: Registry, feature: str, config: Mapping[str, Any], owner: object
) -> CallWrapper:
    """The wrapper a plugin provides for ``feature``, or a ConfigError naming what to install."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"{feature} must be an object of settings (or None), got {type(config).__name__}",
            field=feature,
        )
    try:
        wrapper = registry.hook.wrap_calls(feature=feature, config=config, owner=owner)
    except ConfigError:
        raise
    except Exception as exc:
        err = plugin_error(
            exc,
            raising_plugin(registry, "wrap_calls", exc),
            f"setting up {feature}",
            str(getattr(owner, "provider_id", "")),
            str(getattr(owner, "model_name", "")),
        )
        if err is exc:
            raise
        raise err from exc
    if wrapper is None:
        hint = " (pip install 'llmplug[cache]')" if feature == "cache" else ""
        raise ConfigError(f"{feature}: no plugin provides it{hint}", field=feature)
    return wrapper  # type: ignore[no-any-return]


def wrapper_of(
    registry: Registry, feature: str, config: Mapping[str, Any] | bool | None, owner: object
) -> CallWrapper | None:
    """The wrapper for an owner's ``feature=`` argument: None for None or False (nothing wraps
    the calls), the plugin's defaults for True, else the settings given."""
    if config is None or config is False:
        return None
    return make_wrapper(registry, feature, {} if config is True else config, owner)


def check_cache_options(cache: object, cache_ttl: object) -> None:
    """The per-call client options ``cache`` and ``cache_ttl``."""
    if not (cache is None or isinstance(cache, bool) or cache == "refresh"):
        raise ConfigError(f"cache must be True, False or 'refresh', got {cache!r}", field="cache")
    if cache_ttl is not None and (
        isinstance(cache_ttl, bool) or not isinstance(cache_ttl, int | float) or not cache_ttl > 0
    ):
        raise ConfigError(
            f"cache_ttl must be a number of seconds > 0, got {cache_ttl!r}", field="cache_ttl"
        )


#: Call keywords that are client options, never provider parameters (the interface pops each).
CLIENT_OPTIONS = frozenset(
    {"max_retries", "timeout", "total_timeout", "session_id", "trace_id", "cache", "cache_ttl"}
)


def group_call(
    group: Any, messages: Any, tools: Any, params: Mapping[str, Any], stream: bool
) -> Call:
    """What a group's wrapper sees of a call: the group's name as the model, ``wire="group"``,
    the params without the client options (which go on to the member as they are)."""
    from llmplug._vocab._call import Call
    from llmplug._vocab._inputs import as_messages, as_tools

    cache, cache_ttl = params.get("cache"), params.get("cache_ttl")
    check_cache_options(cache, cache_ttl)
    return Call(
        provider=group.provider_id,
        model=group.name,
        wire="group",
        base_url="",
        messages=as_messages(messages),
        tools=as_tools(tools),
        params={k: v for k, v in params.items() if k not in CLIENT_OPTIONS and k != "stream"},
        stream=stream,
        cache=cache,
        cache_ttl=cache_ttl,
    )
