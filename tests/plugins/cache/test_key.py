"""The cache key: the same as the previous release's for every question (an upgrade keeps the
answers a file holds), and one request built per miss, not two."""

from __future__ import annotations

import asyncio
import json
from hashlib import blake2b
from typing import Any

import llmplug_gemini
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmplug_anthropic
from llmplug import Call, Message, Registry, Tool
from llmplug._plugins import openai_chat, openai_responses
from llmplug.testing import LLMTestServer
from llmplug_cache._key import cache_key, sent_key
from tests.core._probes import Counter, json_values

from .conftest import Cached, Watch, flushed, looked

REGISTRY = Registry(entry_points=False, plugins=[openai_chat, openai_responses])
EVERY_WIRE = Registry(
    entry_points=False, plugins=[openai_chat, openai_responses, llmplug_anthropic, llmplug_gemini]
)
_sorted = msgspec.json.Encoder(order="sorted").encode


def previous_key(call: Call) -> str:
    """The key as the previous release made it: the wire's request built with a placeholder
    key, decoded, its ignored names dropped, encoded again with sorted keys."""
    probe = msgspec.structs.replace(call, stream=False, attempt=0, headers={}, call_id=None)
    request = REGISTRY.unwrapped("build_request")(wire=call.wire, call=probe, key="llmplug-cache")
    body = json.loads(request.content)
    for name in ("stream", "stream_options", "user"):
        body.pop(name, None)
    head = f"{call.wire}\0{request.method}\0{request.url}\0{call.model}\0".encode()
    return blake2b(head + _sorted(body), digest_size=32).hexdigest()


@st.composite
def questions(draw: st.DrawFn, wires: list[str]) -> Call:
    """A call of one of ``wires``: a few messages, params of any JSON (floats, NaN and inf
    too), maybe a tool, and maybe a ``logit_bias`` whose keys are not strings (the body is then
    sorted after decoding it)."""
    params: dict[str, Any] = draw(
        st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=4)
    )
    if draw(st.booleans()):
        params = {**params, "logit_bias": {50256: -100, 9: 1}}
    schema = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))
    texts = draw(st.lists(st.text(max_size=20), min_size=1, max_size=3))
    return Call(
        provider="acme",
        model="m",
        wire=draw(st.sampled_from(wires)),
        base_url="http://127.0.0.1/v1",
        messages=[Message(role="user", content=t) for t in texts],
        tools=[Tool(name="t", description="d", parameters=schema)] if draw(st.booleans()) else None,
        params=params,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call=questions(["openai-chat", "openai-responses"]), stream=st.booleans())
def test_every_key_is_the_previous_releases(call: Call, stream: bool) -> None:
    call = msgspec.structs.replace(call, stream=stream)
    key, _ = cache_key(call, REGISTRY)
    assert key == previous_key(call)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    call=questions(["openai-chat", "openai-responses", "anthropic-messages", "gemini"]),
    headers=st.dictionaries(st.sampled_from(["x-title", "x-trace"]), st.text(max_size=4)),
    user=st.none() | st.text(max_size=4),
    key=st.sampled_from(["sk-live-1", "AIza-2", ""]),
)
def test_a_key_made_of_the_request_sent_is_the_probes(
    call: Call, headers: dict[str, str], user: str | None, key: str
) -> None:
    """The key of a miss known on the loop is made of the request its attempt built (see
    ``Registry.take_request``): on every wire shipped, it is the key every later call of the
    same question makes from its probe (or it would never be found)."""
    params = {**call.params, "user": user}
    call = msgspec.structs.replace(call, params=params, headers=headers, call_id="c-1")
    sent = EVERY_WIRE.unwrapped("build_request")(wire=call.wire, call=call, key=key)
    assert not key or key.encode() not in sent.content  # (else not noted: see test_note_request)
    made = sent_key(call.wire, "m", (sent.method, sent.url, sent.content))
    assert made == cache_key(call, EVERY_WIRE)[0]


async def test_a_miss_builds_its_request_once(
    server: LLMTestServer, cached: Cached, watched: Watch
) -> None:
    counter = Counter(server.base_url)
    llm = cached(keys=("sk-one",))
    watched(llm, counter)
    first = await llm.chat("q", temperature=0.5)
    again = await llm.chat("q", temperature=0.5)
    assert (first.cached, again.cached) == (False, True)
    (sent,) = server.requests
    assert sent.api_key == "sk-one" and sent.json["temperature"] == 0.5
    assert counter.built == 2  # the key's, once per call: the miss's attempt built none


@pytest.mark.parametrize("known", [False, True])
async def test_misses_on_loops_in_threads_each_send_their_own_question_with_a_leased_key(
    server: LLMTestServer, cached: Cached, known: bool
) -> None:
    """Requests handed from the key's probe to the attempt (or, the file known, noted by the
    attempt for the key): on four event loops in four threads at once, 16 in flight on each,
    waiting for the rate limiter before the attempt, every attempt sends its own call's
    question with the key it leased (the cache, the limiter, the key rotation and the threads
    together), and every answer is stored under its own question."""
    llm = cached(keys=("sk-a", "sk-b"), rate_limit_capacity=2, rate_limit_refill_rate=2000.0)
    if known:
        await looked(llm)

    def loop(n: int) -> list[tuple[str, str]]:
        async def ask(q: str) -> tuple[str, str]:
            return q, (await llm.chat(q)).text

        async def main() -> list[tuple[str, str]]:
            return await asyncio.gather(*(ask(f"thread {n} question {i}") for i in range(16)))

        return asyncio.run(main())

    results = await asyncio.gather(*(asyncio.to_thread(loop, n) for n in range(4)))
    answers = [pair for result in results for pair in result]
    assert len(answers) == 64
    assert all(text == f"echo: {q}" for q, text in answers)
    sent = server.requests
    assert len(sent) == 64
    assert sorted(r.json["messages"][-1]["content"] for r in sent) == sorted(q for q, _ in answers)
    keys = [r.api_key for r in sent]
    assert set(keys) == {"sk-a", "sk-b"} and abs(keys.count("sk-a") - keys.count("sk-b")) <= 4
    await flushed(llm)
    again = await asyncio.gather(*(llm.chat(q) for q, _ in answers))
    assert all(
        a.cached and a.text == f"echo: {q}" for a, (q, _) in zip(again, answers, strict=True)
    )
    assert len(server.requests) == 64
