"""The plugin registry: defaults, isolated registries, and third-party plugins installed through
real entry points (a ``*.dist-info`` directory on ``sys.path``), checked over real HTTP."""

from __future__ import annotations

import functools
import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pluggy
import pytest

import llmplug
from llmplug import (
    APIKeyPool,
    Call,
    Completion,
    ConfigError,
    HTTPRequest,
    OpenAICompatible,
    PluginLoadWarning,
    Registry,
    SSEEvent,
    StreamEvent,
    TextDelta,
    default_registry,
    hookimpl,
    set_default_registry,
)
from llmplug._plugins import key_strategies, openai_chat, token_bucket
from llmplug.testing import LLMTestServer

MakeLLM = Callable[..., OpenAICompatible]
DEFAULTS: list[object] = [openai_chat, key_strategies, token_bucket]
DEFAULT_HOOKS = {
    "group-strategies": ("select_member",),
    "key-strategies": ("check_key_strategy", "select_key"),
    "openai-chat": ("build_request", "parse_stream"),
    "openai-responses": ("build_request", "parse_stream"),
    "token-bucket": ("acquire_rate",),
}

# A third-party strategy that answers for "round_robin", a name the defaults also handle.
LAST_KEY = """
    from llmplug import hookimpl

    @hookimpl
    def select_key(strategy, pool, call):
        return pool.lease(len(pool) - 1) if strategy == "round_robin" else None
"""


class Site:
    """Installs distributions with ``llmplug`` entry points into folders put on ``sys.path``."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        self.modules: list[str] = []

    def install(
        self,
        dist: str,
        entry_points: Mapping[str, str],
        modules: Mapping[str, str] | None = None,
        *,
        version: str = "1.0.0",
        folder: str = "site",
    ) -> None:
        where = self.root / folder
        where.mkdir(exist_ok=True)
        for module, source in (modules or {}).items():
            (where / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.append(module)
        info = where / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text("[llmplug]\n" + lines)
        if str(where) not in sys.path:
            self.monkeypatch.syspath_prepend(str(where))
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    default_registry()  # built now, from the real environment, never from a test's plugins
    monkeypatch.delenv("LLMPLUG_DISABLE_PLUGINS", raising=False)
    installed = Site(tmp_path, monkeypatch)
    yield installed
    for module in installed.modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def names(registry: Registry) -> list[str]:
    return [p.name for p in registry.plugins()]


async def keys_used(llm: OpenAICompatible, server: LLMTestServer, calls: int = 3) -> list[str]:
    for _ in range(calls):
        assert (await llm.chat("hi")).text == "echo: hi"
    return [r.api_key or "" for r in server.requests]


# -- the defaults and isolated registries -------------------------------------------------------


def test_default_registry_lists_the_default_plugins_with_their_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMPLUG_DISABLE_PLUGINS", raising=False)
    for registry in (Registry(), default_registry()):
        ours = {p.name: p for p in registry.plugins() if p.distribution == "llmplug"}
        assert {name: p.hooks for name, p in ours.items()} == DEFAULT_HOOKS
        assert {p.version for p in ours.values()} == {llmplug.__version__}
        assert names(registry)[: len(DEFAULT_HOOKS)] == sorted(DEFAULT_HOOKS)  # first
        assert registry.failed == []
    assert default_registry() is default_registry()


async def test_interfaces_without_a_registry_use_the_default_one(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    previous = default_registry()
    custom = Registry(entry_points=False, plugins=[*DEFAULTS, Signer()])
    try:
        set_default_registry(custom)
        assert default_registry() is custom
        await make_llm().chat("hi")
        set_default_registry(None)  # rebuilt from the entry points on next use
        assert default_registry() is not custom
        await make_llm().chat("hi")
    finally:
        set_default_registry(previous)
    assert ["x-signature" in r.headers for r in server.requests] == [True, False]


async def test_isolated_registry_has_only_the_plugins_given(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    empty = Registry(entry_points=False)
    assert empty.plugins() == []
    with pytest.raises(ConfigError, match="no plugin provides the key strategy 'round_robin'"):
        await make_llm(registry=empty).chat("hi")
    assert server.requests == []

    registry = Registry(entry_points=False, plugins=DEFAULTS)
    assert {p.name: p.hooks for p in registry.plugins()} == {
        "llmplug._plugins.openai_chat": ("build_request", "parse_stream"),
        "llmplug._plugins.key_strategies": ("check_key_strategy", "select_key"),
        "llmplug._plugins.token_bucket": ("acquire_rate",),
    }
    assert {(p.distribution, p.version) for p in registry.plugins()} == {(None, None)}
    assert (await make_llm(registry=registry).chat("hi")).text == "echo: hi"


# -- third-party plugins through real entry points ------------------------------------------------


async def test_entry_point_plugin_registers_after_the_defaults_and_overrides_them(
    site: Site, make_llm: MakeLLM, server: LLMTestServer
) -> None:
    plugin = {"acme_last_key": LAST_KEY}
    site.install("acme-llmplug", {"aaa-last-key": "acme_last_key"}, plugin, version="1.2.3")
    registry = Registry()
    assert names(registry).index("aaa-last-key") > max(
        names(registry).index(n) for n in DEFAULT_HOOKS
    )
    info = {p.name: p for p in registry.plugins()}["aaa-last-key"]
    assert (info.distribution, info.version, info.hooks) == (
        "acme-llmplug",
        "1.2.3",
        ("select_key",),
    )

    llm = make_llm(keys=("sk-a", "sk-b"), registry=registry)
    assert await keys_used(llm, server) == ["sk-b"] * 3
    server.clear()
    # A name the plugin does not answer for is still served by the default strategies.
    llm = make_llm(keys=("sk-a", "sk-b"), registry=registry, strategy="least_loaded")
    assert await keys_used(llm, server, 2) == ["sk-a", "sk-b"]
    server.clear()
    # Without the plugin, "round_robin" is the default's again.
    llm = make_llm(keys=("sk-a", "sk-b"), registry=Registry(disable=["aaa-last-key"]))
    assert await keys_used(llm, server) == ["sk-a", "sk-b", "sk-a"]


@pytest.mark.parametrize(
    ("value", "source", "error"),
    [
        ("acme_broken", "raise RuntimeError('acme is broken')", "RuntimeError: acme is broken"),
        ("acme_not_installed", None, "ModuleNotFoundError: No module named 'acme_not_installed'"),
        ("acme_broken:no_such_attr", "X = 1", "AttributeError"),
        (
            "acme_broken",
            "from llmplug import hookimpl\n@hookimpl\ndef select_key(strategy, pool, call, extra):"
            "\n    return None\n",
            "PluginValidationError",
        ),
    ],
    ids=["import-raises", "module-missing", "attribute-missing", "bad-hook-arguments"],
)
async def test_a_plugin_that_fails_to_load_is_reported_and_skipped(
    site: Site, make_llm: MakeLLM, server: LLMTestServer, value: str, source: str | None, error: str
) -> None:
    modules = {"acme_last_key": LAST_KEY}
    if source is not None:
        modules["acme_broken"] = source
    site.install("acme-llmplug", {"acme-broken": value, "acme-last-key": "acme_last_key"}, modules)
    with pytest.warns(PluginLoadWarning, match="'acme-broken' was skipped") as caught:
        registry = Registry()
    assert len(caught) == 1
    assert caught[0].filename == __file__  # points at the code that built the registry
    [(name, text)] = registry.failed
    assert name == "acme-broken"
    assert error in text
    assert "acme-broken" not in names(registry)
    assert {"acme-last-key", *DEFAULT_HOOKS} <= set(names(registry))
    llm = make_llm(keys=("sk-a", "sk-b"), registry=registry)
    assert await keys_used(llm, server, 2) == ["sk-b", "sk-b"]


async def test_a_plugin_with_a_misspelled_hook_is_reported_and_skipped_whole(
    site: Site, make_llm: MakeLLM, server: LLMTestServer
) -> None:
    source = """
        from llmplug import hookimpl

        @hookimpl(wrapper=True)
        def build_request(wire, call, key):
            request = yield
            request.headers["x-acme"] = "1"
            return request

        @hookimpl
        def build_requets(wire, call, key):
            return None
    """
    site.install("acme-llmplug", {"acme-typo": "acme_typo"}, {"acme_typo": source})
    with pytest.warns(PluginLoadWarning, match=r"'acme-typo' was skipped.*build_requets"):
        registry = Registry()
    assert [name for name, _ in registry.failed] == ["acme-typo"]
    assert "acme-typo" not in names(registry)
    assert (await make_llm(registry=registry).chat("hi")).text == "echo: hi"
    assert "x-acme" not in server.requests[0].headers  # its valid hook is not used either


def test_the_same_entry_point_twice_on_sys_path_is_registered_once(site: Site) -> None:
    for folder in ("site-a", "site-b"):
        plugin = {"acme_last_key": LAST_KEY}
        site.install("acme-llmplug", {"acme-last-key": "acme_last_key"}, plugin, folder=folder)
    # A second distribution declaring the very same entry point is the same plugin too.
    site.install("acme-llmplug-copy", {"acme-last-key": "acme_last_key"})
    registry = Registry()  # and no warning (warnings are errors here)
    assert names(registry).count("acme-last-key") == 1
    assert registry.failed == []


def test_two_different_plugins_under_one_name_are_reported(site: Site) -> None:
    site.install("acme-one", {"acme-keys": "acme_last_key"}, {"acme_last_key": LAST_KEY})
    site.install("acme-two", {"acme-keys": "acme_other"}, {"acme_other": LAST_KEY})
    with pytest.warns(PluginLoadWarning, match="'acme-keys' was skipped"):
        registry = Registry()
    assert names(registry).count("acme-keys") == 1
    assert [name for name, _ in registry.failed] == ["acme-keys"]


# -- disabling ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "wire", "message"),
    [
        ("openai-chat", "openai-chat", "no plugin provides the wire format 'openai-chat'"),
        ("openai-responses", "openai-responses", "the wire format 'openai-responses'"),
        ("key-strategies", "openai-chat", "no plugin provides the key strategy 'round_robin'"),
        ("token-bucket", "openai-chat", "no plugin provides the rate limiter 'token_bucket'"),
    ],
)
@pytest.mark.parametrize("how", ["env", "argument"])
async def test_disabling_a_default_plugin_makes_calls_fail_clearly(
    monkeypatch: pytest.MonkeyPatch,
    make_llm: MakeLLM,
    server: LLMTestServer,
    plugin: str,
    wire: str,
    message: str,
    how: str,
) -> None:
    if how == "env":
        monkeypatch.setenv("LLMPLUG_DISABLE_PLUGINS", f" other-plugin , {plugin}")
        registry = Registry()
    else:
        monkeypatch.delenv("LLMPLUG_DISABLE_PLUGINS", raising=False)
        registry = Registry(disable=[plugin])
    assert plugin in registry.disabled
    if how == "env":  # a name no installed plugin has is kept apart (`llmplug plugins` says so)
        assert registry.disabled_unknown == {"other-plugin"}
    assert plugin not in names(registry)
    assert set(names(registry)) >= set(DEFAULT_HOOKS) - {plugin}
    with pytest.raises(ConfigError, match=message):
        await make_llm(registry=registry, wire=wire).chat("hi")
    assert server.requests == []


def test_a_disabled_plugin_is_never_imported(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.install(
        "acme-llmplug", {"acme-broken": "acme_broken"}, {"acme_broken": "raise SystemExit(3)"}
    )
    monkeypatch.setenv("LLMPLUG_DISABLE_PLUGINS", "acme-broken")
    registry = Registry()  # no warning, no exit
    assert "acme_broken" not in sys.modules
    assert registry.failed == []
    assert "acme-broken" not in names(registry)
    assert set(names(registry)) >= set(DEFAULT_HOOKS)


# -- registering by hand, wrappers, new wire formats ---------------------------------------------


def test_registering_a_plugin_with_an_unknown_hook_raises_and_changes_nothing() -> None:
    class Typo:
        @hookimpl
        def build_requets(self, wire: str, call: Call, key: str) -> None:
            return None

    class WrongArguments:
        @hookimpl
        def select_key(self, strategy: str, pool: APIKeyPool, request: Call) -> None:
            return None

    registry = Registry(entry_points=False, plugins=DEFAULTS)
    before = registry.plugins()
    with pytest.raises(pluggy.PluginValidationError, match="build_requets"):
        registry.register(Typo())
    with pytest.raises(pluggy.PluginValidationError, match="request"):
        registry.register(WrongArguments())
    assert registry.plugins() == before
    registry.register(Signer())  # the registry still works
    with pytest.raises(pluggy.PluginValidationError, match="build_requets"):
        Registry(entry_points=False, plugins=[Typo()])


class Signer:
    """A wrapper around every wire format's build_request: adds a header, replaces nothing."""

    @hookimpl(wrapper=True)
    def build_request(self, wire: str, call: Call, key: str) -> Any:
        request = yield
        if request is not None:
            request.headers["x-signature"] = f"signed:{call.model}:{call.attempt}"
        return request


async def test_a_wrapper_adds_a_header_without_replacing_the_default(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, Signer()])
    llm = make_llm(registry=registry, api_params={"temperature": 0.5})
    assert (await llm.chat("hi")).text == "echo: hi"
    events = [e async for e in llm.chat_stream("there")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "echo: there"
    assert [r.headers["x-signature"] for r in server.requests] == ["signed:test-model:0"] * 2
    assert [r.api_key for r in server.requests] == ["sk-test-1"] * 2
    assert server.requests[0].json == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
    }
    assert server.requests[1].stream


class AcmeParser:
    done = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        return []

    def result(self) -> Completion:
        return Completion()

    def parse_body(self, body: bytes) -> Completion:
        return Completion(text="acme:" + json.loads(body)["choices"][0]["message"]["content"])


class AcmeWire:
    """A wire format of its own: the key in ``api-key``, a body of just the user's text."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "acme-json":
            return None
        body = {"model": call.model, "messages": [{"role": "user", "content": "acme wire"}]}
        headers = {"api-key": key, "content-type": "application/json"}
        return HTTPRequest(
            url=call.base_url + "/chat/completions",
            headers=headers,
            content=json.dumps(body).encode(),
        )

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> AcmeParser | None:
        return AcmeParser() if wire == "acme-json" else None


async def test_a_new_wire_format_is_used_only_where_configured(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    plain = Registry(entry_points=False, plugins=DEFAULTS)
    with_acme = Registry(entry_points=False, plugins=[*DEFAULTS, AcmeWire()])
    assert (await make_llm(registry=plain).chat("hi")).text == "echo: hi"
    assert (await make_llm(registry=with_acme).chat("hi")).text == "echo: hi"
    acme = make_llm(registry=with_acme, wire="acme-json")
    assert (await acme.chat("hi")).text == "acme:echo: acme wire"

    without, with_plugin, on_acme = server.requests
    # The plugin changes nothing about what "openai-chat" sends.
    assert (with_plugin.json, dict(with_plugin.headers)) == (without.json, dict(without.headers))
    assert on_acme.headers["api-key"] == "sk-test-1"
    assert "authorization" not in on_acme.headers

    with pytest.raises(ConfigError, match="no plugin provides the wire format 'acme-json'"):
        await make_llm(registry=plain, wire="acme-json").chat("hi")
    assert len(server.requests) == 3


def test_an_interface_whose_wire_or_key_strategy_no_plugin_provides_fails_when_made(
    server: LLMTestServer,
) -> None:
    with pytest.raises(ConfigError, match=r"wire.*no plugin provides the wire format 'nope'"):
        OpenAICompatible(APIKeyPool(["sk-1"], "acme"), "m", server.base_url, wire="nope")
    with pytest.raises(ConfigError, match="no plugin provides the key strategy 'fastest'"):
        OpenAICompatible(APIKeyPool(["sk-1"], "acme", strategy="fastest"), "m", server.base_url)
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, AcmeWire()])
    OpenAICompatible(
        APIKeyPool(["sk-1"], "acme"), "m", server.base_url, wire="acme-json", registry=registry
    )
    assert server.requests == []


def test_the_registry_says_which_wires_and_key_strategies_its_plugins_provide() -> None:
    plain = Registry(entry_points=False, plugins=DEFAULTS)
    with_acme = Registry(entry_points=False, plugins=[*DEFAULTS, AcmeWire()])
    assert plain.has_wire("openai-chat") and with_acme.has_wire("openai-chat")
    assert (plain.has_wire("acme-json"), with_acme.has_wire("acme-json")) == (False, True)
    assert plain.has_key_strategy("round_robin") and plain.has_key_strategy("least_loaded")
    assert not plain.has_key_strategy("fastest")
    # Only build_request answers: a wire needs a parser too.
    half = Registry(entry_points=False, plugins=[OnlyRequests()])
    assert not half.has_wire("openai-chat")


class OnlyRequests:
    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        return openai_chat.build_request(wire, call, key)


# -- the hooks a call runs: dispatched as pluggy would, whatever changes ---------------------------


class LastKey:
    """A key strategy that takes only some of the hook's arguments, and goes first."""

    @hookimpl(tryfirst=True)
    def select_key(self, pool: APIKeyPool, strategy: str) -> object:
        return pool.lease(len(pool) - 1) if strategy == "round_robin" else None


async def test_a_plugin_registered_or_removed_after_an_interface_was_made_decides_its_next_call(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    llm = make_llm(keys=("sk-a", "sk-b", "sk-c"), registry=registry)
    assert await keys_used(llm, server) == ["sk-a", "sk-b", "sk-c"]
    name = registry.register(LastKey())
    # Registered after the defaults, tryfirst, and given (pool, strategy) only.
    assert await keys_used(llm, server, 2) == ["sk-a", "sk-b", "sk-c", "sk-c", "sk-c"]
    registry.unregister(name)
    assert (await llm.chat("hi")).text == "echo: hi"
    assert server.requests[-1].api_key == "sk-a"
    # Positional-only arguments, and a keyword argument of its own that the hook passes.
    picker = FirstKeyWithCall()
    registry.register(picker)
    assert (await llm.chat("hi")).text == "echo: hi"
    assert server.requests[-1].api_key == "sk-a"
    assert [call.model for call in picker.calls] == ["test-model"]


class FirstKeyWithCall:
    def __init__(self) -> None:
        self.calls: list[Call] = []

    @hookimpl(tryfirst=True)
    def select_key(self, strategy: str, pool: APIKeyPool, /, call: Call | None = None) -> object:
        assert call is not None  # pluggy passes a hook's argument to a keyword of that name
        self.calls.append(call)
        return pool.lease(0)


async def test_a_hook_call_monitor_sees_every_hook_of_a_call_until_it_is_removed(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    seen: list[str] = []
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, Recorder(seen)])
    llm = make_llm(registry=registry)
    called: list[str] = []
    undo = registry.pm.add_hookcall_monitoring(
        lambda name, impls, kwargs: called.append(name), lambda *_: None
    )
    assert (await llm.chat("hi")).text == "echo: hi"
    assert called == [
        "parse_stream",
        "acquire_rate",
        "select_key",
        "build_request",
        "observe_attempt",
        "observe_call",
    ]
    undo()
    undo()  # pluggy's undo may be called twice; the second does nothing
    events = [e async for e in llm.chat_stream("there")]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "echo: there"
    assert len(called) == 6
    # The observers were told of both calls, monitored or not.
    assert seen == ["attempt", "call", "attempt", "call"]
    registry.pm.enable_tracing()  # pluggy's own tracing is a monitor too
    writes: list[str] = []
    registry.pm.trace.root.setwriter(lambda line: writes.append(line))
    assert (await llm.chat("again")).text == "echo: again"
    assert any("build_request" in line for line in writes)


class Recorder:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    @hookimpl
    def observe_attempt(self, info: object) -> None:
        self.seen.append("attempt")

    @hookimpl
    def observe_call(self, info: object) -> None:
        self.seen.append("call")


def logged(function: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator of the kind that takes whatever it is given, by position."""

    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        return function(*args)

    return wrapper


class DecoratedLastKey:
    @hookimpl(tryfirst=True)
    @logged
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> object:
        return pool.lease(len(pool) - 1)


async def test_a_decorated_hook_implementation_is_called_as_pluggy_calls_it(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, DecoratedLastKey()])
    llm = make_llm(keys=("sk-a", "sk-b"), registry=registry)
    assert await keys_used(llm, server, 2) == ["sk-b", "sk-b"]


async def test_monitors_removed_out_of_order_leave_on_what_pluggy_leaves_on(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    llm = make_llm(registry=registry)
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def monitor(name: str) -> Callable[[], None]:
        return registry.pm.add_hookcall_monitoring(
            lambda hook, impls, kwargs: seen[name].append(hook), lambda *_: None
        )

    undo_a = monitor("a")
    undo_b = monitor("b")
    undo_a()  # pluggy puts back what was before a: neither is on
    assert (await llm.chat("hi")).text == "echo: hi"
    assert seen == {"a": [], "b": []}
    undo_b()  # pluggy puts back what was before b: a is on again
    assert (await llm.chat("hi")).text == "echo: hi"
    assert "build_request" in seen["a"] and seen["b"] == []


def test_a_hook_without_its_wrappers_answers_as_pluggy_does_and_follows_the_plugins() -> None:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, Signer()])
    call = Call(
        provider="acme",
        model="m",
        wire="openai-chat",
        base_url="http://127.0.0.1/v1",
        messages=[llmplug.Message(role="user", content="hi")],
    )
    wrapped = registry.hook.build_request(wire="openai-chat", call=call, key="sk-1")
    bare = registry.unwrapped("build_request")(wire="openai-chat", call=call, key="sk-1")
    assert wrapped.headers["x-signature"] == "signed:m:0"
    assert "x-signature" not in bare.headers
    assert (bare.url, bare.content) == (wrapped.url, wrapped.content)
    assert registry.unwrapped("build_request")(wire="acme-json", call=call, key="sk-1") is None
    registry.register(AcmeWire())  # a plugin registered later answers too
    acme = registry.unwrapped("build_request")(wire="acme-json", call=call, key="sk-1")
    assert acme.headers["api-key"] == "sk-1"
