"""``Registry.note_request`` and ``Registry.take_request``: the request a call's first attempt
builds, noted for a plugin that can wait for it (llmplug-cache makes the key of a call it
knows will miss from it): what the wire's implementations built, with the attempt's own key,
never a request that holds that key anywhere but in a header."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from llmplug import Call, Completion, HTTPRequest, OpenAICompatible, Registry, hookimpl
from llmplug._plugins import key_strategies, openai_chat, openai_responses, token_bucket
from llmplug.testing import Error, LLMTestServer

from ._probes import Counter, KeyedWire, Signer, Stamper

MakeLLM = Callable[..., OpenAICompatible]
DEFAULTS: list[object] = [openai_chat, openai_responses, key_strategies, token_bucket]


class Noter:
    """A ``wrap_calls`` plugin (as llmplug-cache is) that asks for each call's request, runs
    the call, and takes what was noted, whether the call succeeded or not."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.taken: list[tuple[str, str, bytes] | None] = []

    @hookimpl
    def wrap_calls(self, feature: str, config: Any, owner: Any) -> Noter | None:
        return self if feature == "cache" else None

    async def complete(self, call: Call, run: Callable[[Call], Awaitable[Completion]]) -> Any:
        self.registry.note_request(call)
        try:
            return await run(call)
        finally:
            self.taken.append(self.registry.take_request(call))

    def stream(self, call: Call, run: Any) -> Any:
        return run(call)


def _noting(*plugins: object) -> tuple[Registry, Noter]:
    registry = Registry(entry_points=False, plugins=[*DEFAULTS, *plugins])
    noter = Noter(registry)
    registry.register(noter)
    return registry, noter


@pytest.mark.parametrize("wrapper", [None, Signer, Stamper])
async def test_the_noted_request_is_the_wires_with_the_attempts_key(
    make_llm: MakeLLM, server: LLMTestServer, wrapper: type | None
) -> None:
    counter = Counter(server.base_url)
    registry, noter = _noting(counter, *([wrapper()] if wrapper else []))
    llm = make_llm(
        registry=registry,
        cache={},
        base_url=server.base_url + "?api-version=1",
        api_params={"temperature": 0.5},
    )
    counter.built = 0  # (making the interface asked whether some plugin builds its wire)
    assert (await llm.chat("hi")).text == "echo: hi"
    (sent,) = server.requests
    (taken,) = noter.taken
    assert taken is not None
    method, url, content = taken
    assert counter.built == 1  # noting built nothing more
    assert (method, url) == ("POST", server.base_url + "/chat/completions")  # before the query
    assert sent.query == "api-version=1" and sent.api_key == "sk-test-1"
    assert json.loads(content) == {
        "model": "test-model",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5,
    }
    if wrapper is Stamper:  # the wrapper changed what was sent, not what the wire built
        assert sent.json == {**json.loads(content), "stamped": True}
    else:
        assert sent.body == content
    if wrapper is Signer:
        assert sent.headers["x-signature"] == "signed"


class AttemptWire:
    """The Chat wire, with the attempt's number in its body."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "attempts":
            return None
        body = {"model": call.model, "messages": call.messages, "attempt": call.attempt}
        return HTTPRequest.post_json(call.base_url + "/chat/completions", body, call, key)

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> Any:
        return openai_chat.ChatParser(call) if wire == "attempts" else None


async def test_the_first_request_built_is_noted(make_llm: MakeLLM, server: LLMTestServer) -> None:
    registry, noter = _noting(AttemptWire())
    llm = make_llm(registry=registry, cache={}, wire="attempts")
    server.push(Error(status=500))
    assert (await llm.chat("hi")).text == "echo: hi"
    assert [r.json["attempt"] for r in server.requests] == [0, 1]
    (taken,) = noter.taken
    assert taken is not None and json.loads(taken[2])["attempt"] == 0


@pytest.mark.parametrize("wire", KeyedWire.WIRES)
async def test_a_request_with_its_key_beyond_the_headers_is_not_noted(
    make_llm: MakeLLM, server: LLMTestServer, wire: str
) -> None:
    registry, noter = _noting(KeyedWire())
    llm = make_llm(registry=registry, cache={}, wire=wire)
    assert (await llm.chat("hi")).text == "echo: hi"
    (taken,) = noter.taken
    if wire in ("key-in-url", "key-in-body"):
        assert taken is None
    else:  # in a header of its own, or post_json's made of it: the URL and body are clean
        assert taken is not None and b"sk-test-1" not in taken[2] and "sk-test-1" not in taken[1]


class Raising:
    """A wire whose implementation fails to build a question's request."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "raising":
            return None
        if call.messages[-1].content:  # (not the interface's check that the wire is served)
            raise ValueError("cannot build")
        return HTTPRequest.post_json(call.base_url, {}, call, key)

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> Any:
        return openai_chat.ChatParser(call) if wire == "raising" else None


class Watcher:
    """A wrapper that notes what the implementations raised."""

    def __init__(self) -> None:
        self.raised: list[BaseException] = []

    @hookimpl(wrapper=True)
    def build_request(self, wire: str, call: Call, key: str) -> Any:
        try:
            return (yield)
        except Exception as exc:
            self.raised.append(exc)
            raise


@pytest.mark.parametrize("wrapped", [False, True])
async def test_a_build_that_fails_is_seen_by_the_wrappers_and_notes_nothing(
    make_llm: MakeLLM, server: LLMTestServer, wrapped: bool
) -> None:
    watcher = Watcher()
    registry, noter = _noting(Raising(), *([watcher] if wrapped else []))
    llm = make_llm(registry=registry, cache={}, wire="raising")
    with pytest.raises(Exception, match="cannot build"):
        await llm.chat("hi")
    assert noter.taken == [None]
    assert not server.requests
    if wrapped:
        (raised,) = watcher.raised
        assert str(raised) == "cannot build"


def test_nothing_asked_for_is_noted() -> None:
    registry = Registry(entry_points=False, plugins=DEFAULTS)
    call = Call(provider="p", model="m", wire="openai-chat", base_url="http://x/v1", messages=[])
    registry.hot.build_request(wire="openai-chat", call=call, key="sk-1")
    assert registry.take_request(call) is None
