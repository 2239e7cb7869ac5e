"""The plugin contract over real HTTP, with wire plugins an outsider could have written
(tests/core/_wires.py): framing, rate-limit headers, plugin exceptions, both halves of a
wire, configured headers, and the default plugins for an explicit registry."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

import llmplug
from llmplug import (
    Call,
    Completion,
    ConfigError,
    Done,
    HTTPRequest,
    LLMError,
    PluginError,
    RateLimitError,
    Registry,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    hookimpl,
)
from llmplug.testing import LLMTestServer, Raw
from tests.conftest import MakeLLM
from tests.core._wires import (
    OLLAMA,
    LimitsParser,
    Ollama,
    OllamaParser,
    Variant,
    WholeBodyParser,
    ndjson,
)

DEFAULTS = llmplug.default_plugins()
NDJSON = "application/x-ndjson"
HELLO = ndjson(
    {"message": {"content": "Hel"}, "done": False},
    {"message": {"content": "lo"}, "done": False},
    {"message": {"content": ""}, "done": True, "prompt_eval_count": 3, "eval_count": 2},
)


def registry(*plugins: object) -> Registry:
    return Registry(entry_points=False, plugins=[*DEFAULTS, *plugins])


async def collect(llm: Any, **kw: Any) -> list[StreamEvent]:
    return [e async for e in llm.chat_stream("hi", **kw)]


# -- framing --------------------------------------------------------------------------------


async def test_an_ndjson_wire_streams_line_by_line(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # Lines cut anywhere across HTTP chunks, a CRLF, a blank line: the core frames them.
    wire = b"".join(HELLO).replace(b"\n", b"\r\n", 1).replace(b"}\n{", b"}\n\n{", 1)
    pieces = [wire[:7], wire[7:40], wire[40:41], wire[41:]]
    server.push(Raw(chunks=pieces, content_type=NDJSON))
    llm = make_llm(wire=OLLAMA, registry=registry(Ollama()))
    events = await collect(llm)
    assert events[:2] == [TextDelta("Hel"), TextDelta("lo")]
    done = events[-1]
    assert isinstance(done, Done) and done.completion.text == "Hello"
    assert done.completion.usage is not None and done.completion.usage.total_tokens == 5
    (req,) = server.requests
    assert (req.path, req.json["stream"]) == ("/v1/api/chat", True)


async def test_an_ndjson_stream_cut_before_its_last_line_is_truncated(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Raw(chunks=HELLO[:2], content_type=NDJSON))
    llm = make_llm(wire=OLLAMA, registry=registry(Ollama()), max_retries=0)
    with pytest.raises(StreamError, match="truncated") as info:
        await collect(llm)
    assert info.value.partial is not None and info.value.partial.text == "Hello"


async def test_a_json_framed_wire_streams_its_whole_body_as_events(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    body = b'{"message": {"content": "all at once"}, "done": true, "eval_count": 3}'
    server.push(Raw(body=body, content_type="text/plain"))
    llm = make_llm(wire="whole", registry=registry(Variant("whole", WholeBodyParser)))
    events = await collect(llm)
    assert events[0] == TextDelta("all at once")
    assert isinstance(events[-1], Done) and events[-1].completion.text == "all at once"


async def test_a_parser_declaring_an_unknown_framing_is_refused(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    class Grpc(OllamaParser):
        framing = "grpc"

    server.push(Raw(chunks=HELLO, content_type=NDJSON))
    llm = make_llm(wire="grpc", registry=registry(Variant("grpc", Grpc)))
    with pytest.raises(ConfigError, match="framing='grpc'") as info:
        await collect(llm)
    assert info.value.plugin is not None


# -- rate-limit headers ---------------------------------------------------------------------


async def test_a_wire_reads_its_own_rate_limit_headers_on_a_reply(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    spent = {"acme-ratelimit-requests-remaining": "0", "acme-ratelimit-requests-reset": "30"}
    body = b'{"message": {"content": "ok"}, "done": true}'
    server.push(Raw(body=body, content_type="application/json", headers=spent), key="sk-a")
    llm = make_llm(
        keys=("sk-a", "sk-b"), wire="acme", registry=registry(Variant("acme", LimitsParser))
    )
    server.push(*[Raw(body=body, content_type="application/json")] * 2)
    for _ in range(3):
        await llm.chat("hi")
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b", "sk-b"]
    a = llm.key_pool.status()[0]
    assert a["state"] == "cooling" and 25 < a["cooldown_seconds"] <= 30


async def test_a_429_cools_the_key_for_the_reset_the_wire_reads(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    headers = {"acme-ratelimit-requests-remaining": "0", "acme-ratelimit-requests-reset": "50"}
    error = b'{"error": {"message": "slow down"}}'
    server.push(Raw(status=429, body=error, content_type="application/json", headers=headers))
    llm = make_llm(
        wire="acme", registry=registry(Variant("acme", LimitsParser)), key_wait_timeout=1
    )
    with pytest.raises(RateLimitError) as info:
        await llm.chat("hi")
    assert info.value.rate_limits is not None and info.value.rate_limits.reset == 50
    (a,) = llm.key_pool.status()
    assert a["state"] == "cooling" and 45 < a["cooldown_seconds"] <= 50
    assert len(server.requests) == 1


# -- plugin exceptions ----------------------------------------------------------------------


class DictWalker(OllamaParser):
    """A careless parser: walks untyped JSON and trusts every key to be there."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        import json

        text = json.loads(event.data)["message"]["content"]
        self._text.append(text)
        return [TextDelta(text)]

    def parse_body(self, body: bytes) -> Completion:
        import json

        return Completion(text=json.loads(body)["message"]["content"])


async def test_a_parsers_keyerror_on_a_malformed_body_is_a_plugin_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Raw(body=b'{"msg": "?"}', content_type="application/json"))
    llm = make_llm(wire="walk", registry=registry(Variant("walk", DictWalker)))
    with pytest.raises(PluginError) as info:
        await llm.chat("hi")
    err = info.value
    assert (err.provider, err.model) == ("test", "test-model")
    assert err.plugin is not None and "Variant" in err.plugin
    assert isinstance(err.__cause__, KeyError)
    assert "KeyError" in str(err) and "plugin=" in str(err)
    assert len(server.requests) == 1  # not retried: the same body would fail the same way


async def test_a_parser_failing_mid_stream_breaks_it_with_the_plugin_named(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    lines = [*HELLO[:1], b'{"done": false}\n', *HELLO[1:]]
    server.push(Raw(chunks=lines, content_type=NDJSON))

    class Walker(DictWalker):
        framing = "ndjson"

    llm = make_llm(wire="walk", registry=registry(Variant("walk", Walker)))
    seen: list[StreamEvent] = []
    with pytest.raises(StreamError) as info:
        async for event in llm.chat_stream("hi"):
            seen.append(event)
    assert seen == [TextDelta("Hel")]
    err = info.value
    assert err.partial is not None and err.partial.text == "Hel"
    assert err.plugin is not None and (err.provider, err.model) == ("test", "test-model")
    assert isinstance(err.__cause__, PluginError)
    assert isinstance(err.__cause__.__cause__, KeyError)


async def test_a_stream_error_a_plugin_raises_gets_provider_and_model(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    class Strict(OllamaParser):
        def feed(self, event: SSEEvent) -> list[StreamEvent]:
            raise StreamError("the server sent something odd")

    server.push(Raw(chunks=HELLO, content_type=NDJSON))
    llm = make_llm(wire="strict", registry=registry(Variant("strict", Strict)))
    with pytest.raises(StreamError, match="odd") as info:
        await collect(llm)
    err = info.value
    assert (err.provider, err.model, err.key_id) == (
        "test",
        "test-model",
        llm.key_pool.fingerprints[0],
    )
    assert err.plugin is not None


class Broken:
    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "broken":
            return None
        return HTTPRequest(url=call.base_url + call.params["endpoint"], headers={})

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        return OllamaParser(call) if wire == "broken" else None


async def test_a_request_builder_that_raises_is_a_plugin_error_and_sends_nothing(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    plugins = registry(Broken())
    llm = make_llm(wire="broken", registry=plugins)
    with pytest.raises(PluginError, match="building a request") as info:
        await llm.chat("hi")
    assert info.value.plugin == "Broken" and isinstance(info.value.__cause__, KeyError)
    assert server.requests == []


class Tracer:
    """A wrapper that fails on every request it wraps."""

    @hookimpl(wrapper=True)
    def build_request(
        self, wire: str, call: Call, key: str
    ) -> Generator[None, HTTPRequest | None, HTTPRequest | None]:
        yield
        raise RuntimeError("tracing backend is down")


async def test_the_plugin_named_is_the_one_that_raised_a_wrapper_included(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(registry=registry(Tracer()))
    with pytest.raises(PluginError, match="tracing backend") as info:
        await llm.chat("hi")
    assert info.value.plugin == "Tracer"
    assert server.requests == []


# -- both halves of a wire ------------------------------------------------------------------


class RequestsOnly:
    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        return Ollama().build_request(wire, call, key)


class ParserOnly:
    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        return OllamaParser(call) if wire == OLLAMA else None


@pytest.mark.parametrize("stream", [False, True])
async def test_a_wire_without_a_parser_sends_nothing(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    plugins = registry(RequestsOnly(), ParserOnly())
    llm = make_llm(wire=OLLAMA, registry=plugins)
    plugins.unregister("ParserOnly")  # the parser's plugin went away after the interface was made
    with pytest.raises(ConfigError, match="no plugin parses the wire format 'ollama-chat'"):
        if stream:
            await collect(llm)
        else:
            await llm.chat("hi")
    assert server.requests == []
    assert llm.key_pool.status()[0]["errors"] == 0  # no key was charged for it


# -- configured headers ---------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_configured_headers_reach_a_wire_that_does_not_merge_them(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    body = HELLO if stream else [b'{"message": {"content": "ok"}, "done": true}']
    server.push(Raw(chunks=body, content_type=NDJSON if stream else "application/json"))
    headers = {"X-Title": "my app", "Content-Type": "application/json; charset=utf-8"}
    llm = make_llm(wire=OLLAMA, registry=registry(Ollama()), headers=headers)
    if stream:
        await collect(llm)
    else:
        await llm.chat("hi")
    (req,) = server.requests
    assert req.headers["x-title"] == "my app"
    # The configured value wins over the plugin's, and only one is sent.
    assert req.headers["content-type"] == "application/json; charset=utf-8"
    assert req.api_key == "sk-test-1"


# -- the default plugins for an explicit registry -------------------------------------------


async def test_default_plugins_make_a_complete_registry(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    explicit = Registry(entry_points=False, plugins=llmplug.default_plugins())
    for wire in ("openai-chat", "openai-responses"):
        assert explicit.has_wire(wire)
    assert explicit.has_key_strategy("round_robin") and explicit.has_key_strategy("least_loaded")
    llm = make_llm(registry=explicit)
    assert (await llm.chat("hi")).text
    responses = make_llm(registry=explicit, interface=llmplug.OpenAIResponsesCompatible)
    assert (await responses.chat("hi")).text
    assert [r.api for r in server.requests] == ["chat", "responses"]


def test_default_plugins_leave_out_disabled_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    everything = llmplug.default_plugins()
    monkeypatch.setenv("LLMPLUG_DISABLE_PLUGINS", "openai-responses")
    fewer = llmplug.default_plugins()
    assert len(fewer) == len(everything) - 1
    assert not Registry(entry_points=False, plugins=fewer).has_wire("openai-responses")


def test_every_error_names_the_plugin_only_when_one_raised() -> None:
    assert LLMError("x").plugin is None


class Picky:
    @hookimpl
    def select_key(self, strategy: str, pool: Any, call: Call) -> Any:
        if strategy != "picky":
            return None
        return pool.lease(call.params["preferred_key"])


async def test_a_key_strategy_that_raises_is_a_plugin_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(strategy="picky", registry=registry(Picky()))
    with pytest.raises(PluginError, match="choosing a key") as info:
        await llm.chat("hi")
    assert info.value.plugin == "Picky" and isinstance(info.value.__cause__, KeyError)
    assert server.requests == []
    assert llm.key_pool.status()[0]["in_flight"] == 0
