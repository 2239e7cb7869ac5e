"""Per-call client options (max_retries, timeout, total_timeout, session_id): honoured, and never
sent to the provider, however they are given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmplug import (
    APIKeyPool,
    Call,
    ConfigError,
    InternalServerError,
    KeyLease,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    Registry,
    hookimpl,
    llm_function,
)
from llmplug.testing import Error, LLMTestServer, Reply

MakeLLM = Callable[..., LLMInterface]
OPTIONS: dict[str, Any] = {
    "max_retries": 1,
    "timeout": 30.0,
    "total_timeout": 60.0,
    "session_id": "user-42",
}


@pytest.mark.parametrize("wire", [OpenAICompatible, OpenAIResponsesCompatible])
@pytest.mark.parametrize("stream", [False, True])
async def test_client_options_are_never_sent(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], stream: bool
) -> None:
    llm = make_llm(interface=wire)
    if stream:
        _ = [e async for e in llm.chat_stream("hi", temperature=0.5, **OPTIONS)]
    else:
        await llm.chat("hi", temperature=0.5, **OPTIONS)
    body = server.requests[0].json
    assert body["temperature"] == 0.5
    assert set(OPTIONS).isdisjoint(body)


@pytest.mark.parametrize("stream", [False, True])
async def test_max_retries_per_call_overrides_the_interface(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    async def ask(llm: LLMInterface, **kw: Any) -> str:
        if stream:
            return "".join([getattr(e, "text", "") async for e in llm.chat_stream("hi", **kw)])
        return (await llm.chat("hi", **kw)).text

    server.push(Error(status=500), Reply(text="late"))
    with pytest.raises(InternalServerError):
        await ask(make_llm(max_retries=3), max_retries=0)
    assert len(server.requests) == 1  # tried once: not retried

    server.clear()
    server.push(Error(status=500), Error(status=500), Reply(text="late"))
    assert await ask(make_llm(max_retries=0), max_retries=2) == "late"
    assert len(server.requests) == 3
    assert all("max_retries" not in r.json for r in server.requests)


async def test_options_from_decorators_and_api_params_are_client_options_too(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    # SimpleLLMFunc handed api_params to the openai SDK, where timeout is a client option.
    llm = make_llm(api_params={"temperature": 0.2, "timeout": 30, "max_retries": 0})

    @llm_function(llm_interface=llm, total_timeout=60)
    async def shout(text: str) -> str:
        """Shout the text."""

    server.push(Error(status=500), Reply(text="HI"))
    with pytest.raises(InternalServerError):
        await shout("hi", _llm_params={"session_id": "s-1"})  # type: ignore[call-arg]
    assert len(server.requests) == 1
    body = server.requests[0].json
    assert body["temperature"] == 0.2
    assert set(OPTIONS).isdisjoint(body)
    assert llm.api_params == {"temperature": 0.2, "timeout": 30, "max_retries": 0}


class SeesSessions:
    """A key strategy plugin that looks at the call's session (as a sticky strategy would)."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        if call.provider != "llmplug-probe" and call.messages[0].content != "":
            self.seen.append(call.session_id)
        return None  # the default strategy leases


async def test_session_id_reaches_the_plugins_on_the_call(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    plugin = SeesSessions()
    llm = make_llm(registry=Registry(plugins=[plugin]))
    await llm.chat("hi", session_id="user-42")
    await llm.chat("hi")
    assert plugin.seen == ["user-42", None]
    assert "session_id" not in server.requests[0].json


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("max_retries", -1),
        ("max_retries", True),
        ("max_retries", 1.5),
        ("total_timeout", 0),
        ("session_id", 42),
    ],
)
async def test_a_bad_option_is_refused_before_anything_is_sent(
    server: LLMTestServer, make_llm: MakeLLM, option: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=option):
        await make_llm().chat("hi", **{option: value})
    assert server.requests == []
