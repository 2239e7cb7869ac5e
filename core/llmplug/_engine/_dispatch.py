"""The hooks a call runs, dispatched without pluggy's per-call machinery when none is needed.

A ``HookCaller`` call checks its arguments, copies its implementation list, builds each
implementation's argument list and runs the generic loop that also drives wrappers: about 2 µs,
six times per call (``parse_stream``, ``acquire_rate``, ``select_key``, ``build_request``, the
observers). With no wrapper on a hook and no hook-call monitor on the manager, that work gives the
same result as calling the implementations in pluggy's order and stopping at the first answer,
which is what :class:`HotHooks` holds, once per change of the plugins. A hook with a wrapper,
or a manager being traced (``enable_tracing``, ``add_hookcall_monitoring``), keeps pluggy's own
caller, so wrappers and monitors see every call as before."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._probe import _noted, _prebuilt, note, prebuilt

if TYPE_CHECKING:
    import pluggy

__all__ = ["HOT_HOOKS", "HotHooks", "unwrapped"]

#: The hooks run per call or per attempt: only these are worth a dispatcher of their own.
HOT_HOOKS = (
    "acquire_rate",
    "build_request",
    "observe_attempt",
    "observe_call",
    "observe_tool",
    "parse_stream",
    "select_key",
    "select_member",
)

#: An implementation as called here: its function, and None when it takes exactly the hook's
#: arguments by name (called with them as keywords), else the names it takes positionally and
#: the keyword arguments of its own that the hook passes, as pluggy calls it.
_Impl = tuple[Callable[..., Any], tuple[tuple[str, ...], tuple[str, ...]] | None]


class HotHooks:
    """``hot.build_request(wire=..., call=..., key=...)`` answers as
    ``pm.hook.build_request(...)`` does, for each hook of :data:`HOT_HOOKS`, with the plugins
    registered when it was made: the registry makes a new one whenever they change."""

    __slots__ = HOT_HOOKS

    acquire_rate: Callable[..., Any]
    build_request: Callable[..., Any]
    observe_attempt: Callable[..., Any]
    observe_call: Callable[..., Any]
    observe_tool: Callable[..., Any]
    parse_stream: Callable[..., Any]
    select_key: Callable[..., Any]
    select_member: Callable[..., Any]

    def __init__(self, pm: pluggy.PluginManager, monitored: bool) -> None:
        for name, caller in _dispatchers(pm, monitored).items():
            setattr(self, name, caller)
        self.build_request = _build_request(pm, monitored, self.build_request, self)


def _dispatchers(pm: pluggy.PluginManager, monitored: bool) -> dict[str, Callable[..., Any]]:
    """For each hook of :data:`HOT_HOOKS`: pluggy's own caller when a wrapper or a monitor
    needs it, else a plain loop over the implementations as they are now."""
    out: dict[str, Callable[..., Any]] = {}
    for name in HOT_HOOKS:
        caller = getattr(pm.hook, name)
        impls = caller.get_hookimpls()
        if _needs_pluggy(caller, impls, monitored):
            out[name] = caller
            continue
        out[name] = _loop(caller, impls)
    return out


def _needs_pluggy(caller: pluggy.HookCaller, impls: list[pluggy.HookImpl], monitored: bool) -> bool:
    """Whether a wrapper or a monitor needs pluggy's own caller. (A spec's defaults are pluggy's
    to fill in too; none of these hooks has any today.)"""
    defaults = caller.spec.kwargnames  # type: ignore[union-attr]  # (every hook has a spec)
    return bool(monitored or defaults or any(i.wrapper or i.hookwrapper for i in impls))


def _build_request(
    pm: pluggy.PluginManager, monitored: bool, build: Callable[..., Any], hot: HotHooks
) -> Callable[..., Any]:
    """``build`` (the hook's dispatcher), but a call's request built when it was probed
    (``Registry.probe_request``) is the implementations' answer, not built again; and the
    implementations' answer for a call whose request was asked for (``Registry.note_request``)
    is noted. The hook's wrappers, if any, see either as they see a request built: it is the
    answer of an implementation called first, in pluggy's own call of the hook."""
    caller = pm.hook.build_request
    impls = caller.get_hookimpls()
    if not _needs_pluggy(caller, impls, monitored):

        def bare(*, wire: str, call: Any, key: str) -> Any:
            if _prebuilt:  # (nothing probed, the most common: no call more than before)
                request = prebuilt(call, hot, key)
                if request is not None:
                    return request
            request = build(wire=wire, call=call, key=key)
            if _noted:  # (nothing asked for, the most common: no call more either)
                note(call, key, request)
            return request

        return bare

    #: By id(call): what the implementations built (or raised), for ``ours`` to answer with.
    handed: dict[int, Any] = {}

    def from_probe(wire: str, call: Any, key: str) -> Any:
        request = handed.get(id(call))
        if isinstance(request, Exception):
            raise request  # in pluggy's call: the wrappers see it, as they would have
        return prebuilt(call, hot, key) if request is None else request

    try:
        import pluggy

        # pluggy has no public way to call a hook with an implementation of the moment but
        # call_extra, which inspects the function's signature at each call: as much as the
        # build it spares. One made once, and pluggy's own execution of the hook, instead.
        ours = pluggy.HookImpl(None, "llmplug-prebuilt", from_probe, _TRYFIRST)
        first_wrapper = next(
            (i for i, impl in enumerate(impls) if impl.wrapper or impl.hookwrapper), len(impls)
        )
        with_ours = [*impls[:first_wrapper], ours, *impls[first_wrapper:]]
        hookexec = caller._hookexec
    except (AttributeError, TypeError):  # pragma: no cover - another pluggy: built as always
        return build
    inner = _loop(caller, impls[:first_wrapper])

    def wrapped(*, wire: str, call: Any, key: str) -> Any:
        kwargs = {"wire": wire, "call": call, "key": key}
        # (Asked for and not built yet, and not probed: see reuse_probe.)
        if _noted and _noted.get(id(call), False) is None and id(call) not in _prebuilt:
            # The implementations' answer, noted, then handed to the wrappers by ``ours``.
            try:
                request = inner(**kwargs)
            except Exception as exc:
                request = exc
            else:
                note(call, key, request)
            handed[id(call)] = request
            try:
                return hookexec("build_request", with_ours, kwargs, True)
            finally:
                del handed[id(call)]
        if not _prebuilt:  # nothing probed: pluggy's call as always
            return build(**kwargs)
        return hookexec("build_request", with_ours, kwargs, True)

    return wrapped


_TRYFIRST: Any = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": True,
    "trylast": False,
    "specname": None,
}


def unwrapped(pm: pluggy.PluginManager, name: str) -> Callable[..., Any]:
    """The hook ``name``'s implementations without its wrappers, called as pluggy calls them."""
    caller = getattr(pm.hook, name)
    return _loop(caller, [i for i in caller.get_hookimpls() if not (i.wrapper or i.hookwrapper)])


def _loop(caller: pluggy.HookCaller, impls: list[pluggy.HookImpl]) -> Callable[..., Any]:
    spec = frozenset(caller.spec.argnames)  # type: ignore[union-attr]  # (every hook has one)
    # pluggy calls the last registered first (tryfirst and trylast already placed).
    ordered = tuple(_impl(impl, spec) for impl in reversed(impls))
    firstresult = caller.spec.opts.get("firstresult")  # type: ignore[union-attr]
    return _first(ordered) if firstresult else _each(ordered)


def _impl(impl: pluggy.HookImpl, spec: frozenset[str]) -> _Impl:
    positional = tuple(impl.argnames)
    keywords = tuple(name for name in impl.kwargnames if name in spec)
    if set(positional) | set(keywords) == spec and not _positional_only(impl.function):
        return impl.function, None
    return impl.function, (positional, keywords)


def _positional_only(function: Callable[..., Any]) -> bool:
    """Whether ``function`` may take an argument only by position (unknown: assume it may).
    A decorated function (``functools.wraps``) is unknown: pluggy reads the parameters of the
    function inside, and the decorator's own may take ``*args`` only."""
    inner = getattr(function, "__func__", function)
    code = getattr(inner, "__code__", None)
    return code is None or code.co_posonlyargcount > 0 or hasattr(inner, "__wrapped__")


def _call(function: Callable[..., Any], names: Any, kwargs: dict[str, Any]) -> Any:
    positional, keywords = names
    return function(*[kwargs[n] for n in positional], **{n: kwargs[n] for n in keywords})


def _first(impls: Sequence[_Impl]) -> Callable[..., Any]:
    def call(**kwargs: Any) -> Any:
        for function, names in impls:
            answer = function(**kwargs) if names is None else _call(function, names, kwargs)
            if answer is not None:
                return answer
        return None

    return call


def _each(impls: Sequence[_Impl]) -> Callable[..., Any]:
    def call(**kwargs: Any) -> list[Any]:
        answers = []
        for function, names in impls:
            answer = function(**kwargs) if names is None else _call(function, names, kwargs)
            if answer is not None:
                answers.append(answer)
        return answers

    return call
