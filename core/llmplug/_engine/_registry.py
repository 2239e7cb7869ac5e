"""The plugin registry: one pluggy PluginManager, filled from the ``llmplug`` entry-point group."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from llmplug._limits._keys import APIKeyPool
from llmplug._vocab._call import Call
from llmplug._vocab._errors import ConfigError
from llmplug._vocab._types import Message

from . import _hookspecs
from ._dispatch import HotHooks, unwrapped
from ._hookspecs import PROJECT
from ._members import GroupCall, Member
from ._probe import MAX_NOTED, Noted, ProbedRequest, _noted, probe_request, reuse

if TYPE_CHECKING:
    import importlib.metadata as md

__all__ = [
    "DISABLE_ENV",
    "PluginInfo",
    "PluginLoadWarning",
    "Registry",
    "default_plugins",
    "default_registry",
    "set_default_registry",
]

DISABLE_ENV = "LLMPLUG_DISABLE_PLUGINS"
_DEFAULT_DIST = "llmplug"


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded and was skipped; the others work."""


#: The kinds of name a plugin may say it serves (its ``SERVES`` attribute).
SERVED_KINDS = ("wire", "key_strategy", "group_strategy", "limiter", "feature")


class PluginInfo(NamedTuple):
    """One installed plugin, as ``llmplug plugins`` lists it: its entry-point name, the
    distribution and version that provide it, the hooks it implements, and the names it
    serves, by kind (``{"wire": ("gemini",)}``), as its ``SERVES`` says (empty when it says
    nothing: hooks dispatch by name, so nothing else can tell)."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]
    serves: dict[str, tuple[str, ...]] = {}  # noqa: RUF012 (a NamedTuple's default)


class _Manager(pluggy.PluginManager):
    """A ``PluginManager`` that tells its registry whenever its plugins change, however they
    change: :meth:`Registry.register`, ``registry.pm.register`` straight, pluggy's
    ``load_setuptools_entrypoints`` or ``set_blocked``. Every one goes through these two
    methods, so what the registry derives from its plugins (``observed``, ``hot``) is never
    stale and costs the hot path nothing. A hook-call monitor (``enable_tracing`` too) is a
    change as well: while one is on, every hook goes through pluggy, where monitors see it."""

    def __init__(self, project: str, changed: Callable[[], None]) -> None:
        super().__init__(project)
        self._changed = changed
        self._plain = getattr(self, "_inner_hookexec", None)

    @property
    def monitored(self) -> bool:
        """Whether a hook-call monitor is on: pluggy's own call was replaced, and not put back
        (monitors removed out of order put back the one before, as pluggy does)."""
        return getattr(self, "_inner_hookexec", None) is not self._plain or self._plain is None

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        undo = super().add_hookcall_monitoring(before, after)
        self._changed()

        def remove() -> None:
            undo()
            self._changed()

        return remove

    def register(self, plugin: object, name: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        self._changed()
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        gone = super().unregister(plugin, name)
        self._changed()
        return gone


class Registry:
    """A pluggy ``PluginManager`` with llmplug's hook specs.

    ``Registry()`` loads every installed plugin (the defaults first, so third parties win);
    ``Registry(entry_points=False, plugins=[...])`` is an isolated registry for tests. Plugins
    named in ``disable`` or in ``$LLMPLUG_DISABLE_PLUGINS`` (comma-separated) are not loaded."""

    def __init__(
        self,
        *,
        entry_points: bool = True,
        plugins: Iterable[object] = (),
        disable: Iterable[str] = (),
    ) -> None:
        #: Whether some plugin implements an observer hook: read on every attempt, so it is a
        #: plain attribute, refreshed by the manager whenever its plugins change.
        self.observed = False
        # Held while what is derived from the plugins is made again: two threads registering at
        # once must not leave the first one's older view in place.
        self._refreshing = threading.Lock()
        self._pm = _Manager(PROJECT, self._refresh)
        self.pm: pluggy.PluginManager = self._pm
        self.pm.add_hookspecs(_hookspecs)
        #: The hooks a call runs, as plain functions (see ``_dispatch``): ``hot.select_key(...)``
        #: answers as ``hook.select_key(...)`` does. Remade whenever the plugins change.
        self.hot: HotHooks
        self._refresh()
        env = os.environ.get(DISABLE_ENV, "")
        self.disabled = frozenset(n.strip() for n in (*disable, *env.split(",")) if n.strip())
        #: (plugin name, error text) for each plugin that failed to load.
        self.failed: list[tuple[str, str]] = []
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        #: Disabled names that no installed entry point has (a typo leaves its plugin active).
        self.disabled_unknown: frozenset[str] = frozenset()
        if entry_points:
            self._load_entry_points()
        for plugin in plugins:
            self.register(plugin)
        self.pm.check_pending()

    def _refresh(self) -> None:
        with self._refreshing:
            hook = self._pm.hook
            self.observed = any(
                getattr(hook, name).get_hookimpls()
                for name in ("observe_attempt", "observe_call", "observe_tool", "observe_run")
            )
            # Emptied before hot is replaced: a probe that reads the new hot (probe_request
            # reads hot first) builds with the new plugins too.
            self._unwrapped: dict[str, Callable[..., Any]] = {}
            self.hot = HotHooks(self._pm, monitored=self._pm.monitored)

    def unwrapped(self, hook: str) -> Callable[..., Any]:
        """The hook named ``hook`` without its wrappers: its implementations, called as pluggy
        calls them (the last registered first; a ``firstresult`` hook's first answer wins), as
        ``registry.unwrapped("build_request")(wire=..., call=..., key=...)``. For asking a hook
        for an answer that is not on its way out: llmplug-cache builds the request of its key
        this way, so the wrappers that see requests leave (a span, a signature) see none."""
        made = self._unwrapped.get(hook)
        if made is None:
            made = self._unwrapped[hook] = unwrapped(self._pm, hook)
        return made

    def probe_request(
        self, call: Call, ignore: frozenset[str] = frozenset()
    ) -> ProbedRequest | None:
        """The request ``call`` would make, built before it runs, for a plugin that needs it
        first (llmplug-cache's key): ``build_request``'s implementations without its wrappers,
        with a placeholder key. JSON made by :meth:`HTTPRequest.post_json` comes with its keys
        sorted and without the top-level names in ``ignore`` (``ProbedRequest.sorted``). None
        when no plugin builds requests for the wire."""
        return probe_request(self, call, ignore)

    def reuse_probe(self, call: Call, probed: ProbedRequest) -> None:
        """Have ``call``'s first attempt send ``probed`` (probed from this ``call``) instead of
        building its request again: its URL and body, with the attempt's own key in the bearer
        header, which the hook's wrappers see as a request built. Only when the wire took them
        from ``post_json`` as they came, put its key nowhere but in that header, and the
        plugins are the same at the attempt; else the attempt builds its own, as always."""
        reuse(call, probed)

    def note_request(self, call: Call) -> None:
        """Have ``call``'s first attempt note the request it builds, for ``take_request``: its
        method, URL and content as ``build_request``'s implementations built them (before the
        hook's wrappers, and before the core adds the interface's query to the URL), with the
        attempt's own key. For a feature that can wait for the request the call sends anyway
        (llmplug-cache's key of a call known to miss). Take it in any case, once the call ran."""
        # (The dict's steps here, not in a function of _probe's: a cache asks for most misses.)
        if len(_noted) >= MAX_NOTED:
            with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # (another thread's)
                del _noted[next(iter(_noted))]  # the oldest
        _noted[id(call)] = None

    def take_request(self, call: Call) -> Noted | None:
        """``(method, url, content)`` of the request noted for ``call`` (``note_request``), and
        forget it. None: not built (the call failed before its first attempt built one), or its
        key is in its URL or content (a placeholder's request then: ``probe_request``)."""
        return _noted.pop(id(call), None)

    @property
    def hook(self) -> Any:
        """The hook relay: ``registry.hook.build_request(wire=..., call=..., key=...)``."""
        return self.pm.hook

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object or module; unknown hook names are an error at once.

        Without ``name``, a module goes by its ``__name__`` and an object by its class name."""
        if name is None:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if self.pm.has_plugin(name):
                name = None  # let pluggy make a unique one
        registered = self.pm.register(plugin, name=name)
        assert registered is not None
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            # A rejected plugin must not stay registered: it would make every later
            # register() (and check_pending()) fail too.
            self.pm.unregister(plugin)
            raise
        return registered

    def unregister(self, name: str) -> None:
        """Remove the plugin registered under ``name`` (an entry point's name)."""
        self.pm.unregister(name=name)

    def _load_entry_points(self) -> None:
        # Imported here: importlib.metadata costs ~17 ms, and `import llmplug` must stay fast.
        import importlib.metadata as md

        eps = md.entry_points(group=PROJECT)
        seen: set[tuple[str, str]] = set()
        unique = []
        for ep in eps:
            if (ep.name, ep.value) in seen:
                continue  # the same distribution found twice on sys.path
            seen.add((ep.name, ep.value))
            unique.append(ep)
        # Defaults first: pluggy calls later registrations first, so third parties override.
        unique.sort(key=lambda ep: (_dist_name(ep) != _DEFAULT_DIST, ep.name))
        self.disabled_unknown = self.disabled - {ep.name for ep in unique}
        for ep in unique:
            if ep.name in self.disabled:
                continue
            if self.pm.has_plugin(ep.name):
                # Two different plugins under one name: say so rather than drop one silently.
                self._report(ep.name, f"{ep.value}: another plugin of that name is registered")
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                self._report(ep.name, f"{type(exc).__name__}: {exc}")
                continue
            unknown = [hc.name for hc in self.pm.get_hookcallers(plugin) or () if not hc.has_spec()]
            if unknown:
                self.pm.unregister(plugin)
                self._report(ep.name, f"implements unknown hooks {unknown} (misspelled?)")
                continue
            dist = ep.dist
            self._dists[ep.name] = (dist.name, dist.version) if dist else (None, None)

    def _report(self, name: str, error: str) -> None:
        self.failed.append((name, error))
        # stacklevel: _report <- _load_entry_points <- __init__ <- the code that built the registry
        warnings.warn(
            f"llmplug plugin {name!r} was skipped: {error}", PluginLoadWarning, stacklevel=4
        )

    # -- what the plugins provide ---------------------------------------------------------------
    #
    # Plugins declare nothing: the hooks dispatch by name, so whether a name is provided is
    # asked the way the pipeline asks it. A third-party plugin adds a wire or a strategy just by
    # answering for it.

    def has_wire(self, wire: str, call: Call | None = None) -> bool:
        """Whether some plugin's ``build_request`` and some plugin's ``parse_stream`` answer for
        the wire format ``wire``. Both are asked with ``call`` (by default a one-message
        placeholder) and a placeholder key; nothing is sent."""
        probe = call or _probe_call(wire)
        return _answers(
            lambda: self.hook.build_request(wire=wire, call=probe, key=_PROBE_KEY)
        ) and _answers(lambda: self.hook.parse_stream(wire=wire, call=probe))

    def check_key_strategy(self, pool: APIKeyPool) -> None:
        """Check ``pool``'s key strategy settings with the plugin that answers for them
        (``check_key_strategy``): its :class:`ConfigError` is raised with ``field`` under
        ``key_strategy.``; settings no plugin checks are a ConfigError too."""
        settings = dict(pool.strategy_settings)
        try:
            checked = self.hook.check_key_strategy(
                strategy=pool.strategy, settings=settings, pool=pool
            )
        except ConfigError as exc:
            field = f"key_strategy.{exc.field}" if exc.field else "key_strategy"
            raise ConfigError(
                f"key_strategy {pool.strategy!r}: {exc.message}", field=field
            ) from None
        except Exception as exc:
            raise ConfigError(
                f"key_strategy {pool.strategy!r}: checking its settings failed: "
                f"{type(exc).__name__}: {exc}",
                field="key_strategy",
            ) from exc
        if checked is None and settings:
            first = sorted(settings)[0]
            raise ConfigError(
                f"the key strategy {pool.strategy!r} takes no settings (no plugin checks "
                f"them), got {sorted(settings)}",
                field=f"key_strategy.{first}",
            )

    def has_key_strategy(
        self,
        strategy: str | Mapping[str, Any],
        call: Call | None = None,
        keys: int = 1,
    ) -> bool:
        """Whether some plugin's ``select_key`` answers for ``strategy`` (a name, or a
        ``{"name": ...}`` with settings), asked on a throwaway pool of ``keys`` keys (the
        lease is released at once)."""
        probe = call or _probe_call("")
        probes = [f"{_PROBE_KEY}-{i}" for i in range(max(1, keys))]
        pool = APIKeyPool(probes, probe.provider, strategy=strategy, shared=False)
        leases: list[Any] = []

        def ask() -> object:
            leases.append(self.hook.select_key(strategy=pool.strategy, pool=pool, call=probe))
            return leases[-1]

        answered = _answers(ask)
        release = getattr(leases[0] if leases else None, "release", None)
        if callable(release):
            release()
        return answered

    def has_group_strategy(self, strategy: str, group: Any) -> bool:
        """Whether some plugin's ``select_member`` answers for ``strategy``, asked with every
        member of ``group`` copied as a candidate: a strategy's state (a round-robin's turn)
        stays as it was, and nothing is sent."""
        copies = [Member(m.llm, m.weight, m.name) for m in group.members]
        probe = GroupCall(messages=[], params={}, stream=False, candidates=copies)
        return _answers(lambda: self.hook.select_member(strategy=strategy, group=group, call=probe))

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and the hooks it implements."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(hc.name for hc in self.pm.get_hookcallers(plugin) or ()))
            dist, version = self._dists.get(name, (None, None))
            out.append(PluginInfo(name, dist, version, hooks, _serves(plugin)))
        return out


def _serves(plugin: object) -> dict[str, tuple[str, ...]]:
    """A plugin's ``SERVES`` (``{"wire": ["gemini"]}``), the kinds and names that are strings
    kept; anything else in it is left out rather than failing the listing."""
    declared = getattr(plugin, "SERVES", None)
    if not isinstance(declared, Mapping):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for kind, names in declared.items():
        if isinstance(kind, str) and isinstance(names, list | tuple):
            kept = tuple(n for n in names if isinstance(n, str))
            if kept:
                out[kind] = kept
    return out


_PROBE_KEY = "llmplug-probe"


def _probe_call(wire: str) -> Call:
    return Call(
        provider="llmplug-probe",
        model="llmplug-probe",
        wire=wire,
        base_url="http://127.0.0.1/v1",
        messages=[Message(role="user", content="")],
    )


def _answers(ask: Callable[[], object]) -> bool:
    try:
        return ask() is not None
    except Exception:
        # Plugins answer None for names not theirs before doing any work: one that raises got
        # past that check, so the name is its own (a real call will show the same error).
        return True


def _dist_name(ep: md.EntryPoint) -> str | None:
    return ep.dist.name if ep.dist is not None else None


def default_plugins() -> list[object]:
    """The default plugins (wire formats, key strategies, token bucket): the objects the
    ``llmplug`` distribution declares in its own ``llmplug`` entry points, loaded, in the order
    ``Registry()`` registers them. For an explicit registry::

        Registry(entry_points=False, plugins=[my_plugin, *llmplug.default_plugins()])

    Plugins named in ``$LLMPLUG_DISABLE_PLUGINS`` are left out, as ``Registry()`` leaves them."""
    import importlib.metadata as md

    env = os.environ.get(DISABLE_ENV, "")
    disabled = {n.strip() for n in env.split(",") if n.strip()}
    eps = md.distribution(_DEFAULT_DIST).entry_points.select(group=PROJECT)
    return [ep.load() for ep in sorted(eps, key=lambda ep: ep.name) if ep.name not in disabled]


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, built on first use (not at import)."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def set_default_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (None: rebuild it on next use)."""
    global _default
    _default = registry
