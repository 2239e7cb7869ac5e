"""Which plugin raised, and the error the user gets for it. Used on the error path only: the
hot path keeps no record of which plugin answered a hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmplug._vocab._errors import LLMError, PluginError

__all__ = ["answering_plugin", "plugin_error", "raising_plugin"]


def raising_plugin(registry: Any, hook: str, exc: BaseException) -> str | None:
    """The plugin whose implementation of ``hook`` raised ``exc``: the innermost frame of its
    traceback that runs one of the hook's implementations (a wrapper's included)."""
    codes = {
        getattr(impl.function, "__code__", None): impl.plugin_name
        for impl in getattr(registry.hook, hook).get_hookimpls()
    }
    name = None
    tb = exc.__traceback__
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code, name)
        tb = tb.tb_next
    return name


def answering_plugin(registry: Any, hook: str, kwargs: Mapping[str, Any]) -> str | None:
    """The plugin whose implementation answers ``hook(**kwargs)`` first, asked again the way
    pluggy asks (last registered first, wrappers aside). Hooks are cheap and free of side
    effects by contract, so asking again only costs the throwaway answer."""
    for impl in reversed(getattr(registry.hook, hook).get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            answer = impl.function(*[kwargs[name] for name in impl.argnames])
        except Exception:
            name: str = impl.plugin_name  # got past its name check: the name is its own
            return name
        if answer is not None:
            return impl.plugin_name  # type: ignore[no-any-return]
    return None


def plugin_error(
    exc: Exception, plugin: str | None, doing: str, provider: str, model: str
) -> LLMError:
    """What the user gets for ``exc``, raised by ``plugin``'s code while ``doing`` something: an
    :class:`LLMError` the plugin raised, with provider, model and plugin filled in where it
    left them out; anything else as a :class:`PluginError` (raise it ``from exc``)."""
    if isinstance(exc, LLMError):
        exc.provider = exc.provider or provider
        exc.model = exc.model or model
        exc.plugin = exc.plugin or plugin
        return exc
    who = f"the plugin {plugin!r}" if plugin else "a plugin"
    return PluginError(
        f"{who} raised {type(exc).__name__} while {doing}: {exc}",
        provider=provider,
        model=model,
        plugin=plugin,
    )
