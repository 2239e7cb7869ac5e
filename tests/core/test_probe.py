"""``Registry.probe_request`` and ``Registry.reuse_probe``: a call's request built before it
runs (llmplug-cache's key), with its JSON sorted, and sent by the call's first attempt instead
of being built again, only when that sends exactly what the wire would have built."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplug import (
    Call,
    Completion,
    HTTPRequest,
    Message,
    OpenAICompatible,
    ProbedRequest,
    Registry,
    Tool,
    hookimpl,
)
from llmplug._plugins import key_strategies, openai_chat, openai_responses, token_bucket
from llmplug.testing import Error, LLMTestServer

from ._probes import Counter, KeyedWire, Signer, json_values

MakeLLM = Callable[..., OpenAICompatible]
DEFAULTS: list[object] = [openai_chat, openai_responses, key_strategies, token_bucket]
IGNORE = frozenset({"stream", "stream_options", "user"})
_sorted = msgspec.json.Encoder(order="sorted").encode


def _call(wire: str = "openai-chat", **kw: Any) -> Call:
    fields: dict[str, Any] = {
        "provider": "acme",
        "model": "m",
        "wire": wire,
        "base_url": "http://127.0.0.1/v1",
        "messages": [Message(role="user", content="hi")],
    }
    fields.update(kw)
    return Call(**fields)


def _canonical(content: bytes) -> bytes:
    body = json.loads(content)
    for name in IGNORE:
        body.pop(name, None)
    return _sorted(body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    wire=st.sampled_from(["openai-chat", "openai-responses"]),
    params=st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4),
    schema=st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    with_tool=st.booleans(),
)
def test_a_probe_is_the_wires_body_with_its_keys_sorted(
    wire: str, params: dict[str, Any], schema: dict[str, Any], with_tool: bool
) -> None:
    """Byte for byte what sorting the wire's own body gives, whatever the dicts' order: the
    cache's keys of the previous release stay the same."""
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    tools = [Tool(name="t", description="d", parameters=schema)] if with_tool else None
    call = _call(wire, params=params, tools=tools)
    built = registry.unwrapped("build_request")(wire=wire, call=call, key="sk-1")
    probed = registry.probe_request(call, IGNORE)
    assert isinstance(probed, ProbedRequest) and probed.sorted
    assert probed.request.content == _canonical(built.content)
    assert probed.request.url == built.url
    assert probed.request.headers["authorization"] != "Bearer sk-1"  # a placeholder, no key
    reordered = _call(wire, params=dict(reversed(params.items())), tools=tools)
    again = registry.probe_request(reordered, IGNORE)
    assert again is not None and again.request.content == probed.request.content


def test_a_body_that_cannot_be_sorted_comes_as_the_wire_made_it() -> None:
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    call = _call(params={"logit_bias": {50256: -100, 9: 1}})  # keys that are not strings
    probed = registry.probe_request(call, IGNORE)
    built = registry.unwrapped("build_request")(wire="openai-chat", call=call, key="sk-1")
    assert probed is not None and not probed.sorted
    assert probed.request.content == built.content
    assert registry.probe_request(_call(wire="no-such-wire"), IGNORE) is None


Between = Callable[[], object]


class Prober:
    """A ``wrap_calls`` plugin (as llmplug-cache is) that probes each call's request, keeps the
    probe, hands it to the call's attempt, then runs the call (``between`` runs in between)."""

    def __init__(self, registry: Registry, between: Between = lambda: None) -> None:
        self.registry = registry
        self.between = between
        self.probed: list[ProbedRequest] = []

    @hookimpl
    def wrap_calls(self, feature: str, config: Any, owner: Any) -> Prober | None:
        return self if feature == "cache" else None

    async def complete(self, call: Call, run: Callable[[Call], Awaitable[Completion]]) -> Any:
        probed = self.registry.probe_request(call, IGNORE)
        assert probed is not None
        self.probed.append(probed)
        self.registry.reuse_probe(call, probed)
        self.between()
        return await run(call)

    def stream(self, call: Call, run: Any) -> Any:
        return run(call)


def _probing(*plugins: object, between: Between = lambda: None) -> tuple[Registry, Prober]:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, *plugins])
    prober = Prober(registry, between)
    registry.register(prober)
    return registry, prober


@pytest.mark.parametrize("wrapped", [False, True])
async def test_a_probed_call_sends_the_probe_with_its_own_key(
    make_llm: MakeLLM, server: LLMTestServer, wrapped: bool
) -> None:
    counter, signer = Counter(), Signer()
    registry, prober = _probing(counter, *([signer] if wrapped else []))
    llm = make_llm(registry=registry, cache={}, api_params={"temperature": 0.5})
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    signer.seen.clear()
    assert (await llm.chat("hi")).text == "echo: hi"
    (sent,) = server.requests
    assert sent.body == prober.probed[0].request.content  # the probe's bytes, as they were
    assert sent.api_key == "sk-test-1"
    assert json.loads(sent.body)["temperature"] == 0.5
    assert counter.built == 1  # the probe's: the attempt built nothing
    if wrapped:  # the wrapper saw the request sent, with its key, and changed it
        assert signer.seen == ["Bearer sk-test-1"]
        assert sent.headers["x-signature"] == "signed"


async def test_a_retry_builds_its_own_request(make_llm: MakeLLM, server: LLMTestServer) -> None:
    counter = Counter()
    registry, _ = _probing(counter)
    llm = make_llm(registry=registry, cache={})
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    server.push(Error(status=500))
    assert (await llm.chat("hi")).text == "echo: hi"
    first, second = server.requests
    assert first.json == second.json
    assert counter.built == 2  # the probe's, and the second attempt's


async def test_plugins_that_change_after_the_probe_build_the_request(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    counter = Counter()
    registry, _ = _probing(counter, between=lambda: registry.register(Signer()))
    llm = make_llm(registry=registry, cache={})
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    assert (await llm.chat("hi")).text == "echo: hi"
    assert counter.built == 2
    assert server.requests[0].headers["x-signature"] == "signed"


@pytest.mark.parametrize("wire", KeyedWire.WIRES)
async def test_a_key_anywhere_but_the_bearer_header_is_the_attempts_own(
    make_llm: MakeLLM, server: LLMTestServer, wire: str
) -> None:
    counter = Counter()
    registry, _ = _probing(counter, KeyedWire())
    llm = make_llm(registry=registry, cache={}, wire=wire)
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    assert (await llm.chat("hi")).text == "echo: hi"
    (sent,) = server.requests
    assert counter.built == 2
    assert b"llmplug-probe" not in sent.body and "llmplug-probe" not in sent.query
    assert "llmplug-probe" not in str(dict(sent.headers))
    expected = {
        "key-in-url": sent.query,
        "key-in-body": json.loads(sent.body).get("api_key", ""),
        "key-in-header": sent.headers.get("x-api-key", ""),
        "key-transformed": sent.headers.get("authorization", ""),
    }[wire]
    assert "sk-test-1" in expected


async def test_a_name_left_out_of_the_probe_is_sent(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    counter = Counter()
    registry, prober = _probing(counter)
    llm = make_llm(registry=registry, cache={}, api_params={"user": "u-1"})
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    assert (await llm.chat("hi")).text == "echo: hi"
    assert "user" not in json.loads(prober.probed[0].request.content)
    assert json.loads(server.requests[0].body)["user"] == "u-1"
    assert counter.built == 2


class Failing:
    """A wire whose request cannot be built."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "failing":
            return None
        raise ValueError("no request for you")


def test_a_probe_that_fails_leaves_the_next_requests_as_they_were() -> None:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, Failing()])
    with pytest.raises(ValueError, match="no request for you"):
        registry.probe_request(_call("failing"), IGNORE)
    call = _call(params={"z": 1, "a": 2})
    built = registry.unwrapped("build_request")(wire="openai-chat", call=call, key="sk-1")
    assert type(built) is HTTPRequest  # not a probe's: keys in the wire's order
    assert list(json.loads(built.content)) == ["model", "messages", "z", "a"]


class Swapper(Prober):
    """Hands each call the probe of another call (a wrapper's mistake): ignored."""

    async def complete(self, call: Call, run: Callable[[Call], Awaitable[Completion]]) -> Any:
        other = msgspec.structs.replace(call, messages=[Message(role="user", content="other")])
        probed = self.registry.probe_request(other, IGNORE)
        assert probed is not None
        self.registry.reuse_probe(call, probed)
        return await run(call)


async def test_a_probe_handed_to_another_call_is_not_sent(
    make_llm: MakeLLM, server: LLMTestServer
) -> None:
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    registry.register(Swapper(registry))
    llm = make_llm(registry=registry, cache={})
    assert (await llm.chat("mine")).text == "echo: mine"
    assert server.requests[0].json["messages"][0]["content"] == "mine"
