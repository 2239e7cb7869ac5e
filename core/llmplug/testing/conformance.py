"""The conformance kit: the same standard tests for every wire plugin, as langchain-tests gives
every LangChain integration.

Subclass :class:`WireConformance` in your test suite and give it a ``make_wire_llm`` fixture:
a callable that makes an interface of your wire, with the keys it is given, pointed at
``server``, an :class:`llmplug.testing.LLMTestServer` (or a server of your own that answers
the same scripted ``Reply``/``Error``/``Fault`` objects in your wire's shapes)::

    from llmplug.testing.conformance import WireConformance

    class TestMyWire(WireConformance):
        @pytest.fixture
        def make_wire_llm(self, server):
            def make(keys=("sk-1", "sk-2"), **kw):
                pool = APIKeyPool(list(keys), "test", shared=False)
                return LLMInterface(pool, "test-model", server.base_url, wire="my-wire",
                                    max_retries=3, retry_delay=0.001, **kw)
            return make

The tests are async (pytest-asyncio in ``auto`` mode). Class attributes say what your
provider sends where the kit cannot guess: ``context_length_error`` (the error its server
sends for a prompt that does not fit), ``bad_key_error`` (for a refused key). A wire with no
reasoning output sets ``reasons = False``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from llmplug import (
    AuthenticationError,
    BadRequestError,
    Completion,
    Done,
    LLMInterface,
    Message,
    ReasoningDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    async_llm_function,
)

from ._replies import Error, Fault, Raw, RecordedRequest, Reply, ToolCallReply
from ._respond import render_events
from ._server import LLMTestServer

__all__ = ["WireConformance"]

MakeLLM = Callable[..., LLMInterface]

#: A text with characters of two, three and four bytes in UTF-8.
MULTIBYTE = "héllo wörld, 日本語のテキスト 🎉🚀 done"


async def _stream(llm: LLMInterface, messages: Any, **kw: Any) -> tuple[list[StreamEvent], Any]:
    events = [e async for e in llm.chat_stream(messages, **kw)]
    done = events[-1]
    assert isinstance(done, Done), f"a stream ends with Done, got {done!r}"
    return events, done.completion


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in _leaves(v)]
    return []


def _cut_in_bytes(events: list[bytes], step: int) -> list[bytes]:
    data = b"".join(events)
    return [data[i : i + step] for i in range(0, len(data), step)]


class City(msgspec.Struct):
    """The typed output of the kit's ``@llm_function`` test."""

    name: str
    population: int


class WireConformance:
    """The standard tests of a wire plugin (see the module's docs)."""

    #: The error the wire's server sends for a prompt that does not fit the model.
    context_length_error = Error(
        status=400,
        message="This model's maximum context length is 8192 tokens",
        code="context_length_exceeded",
        type="invalid_request_error",
    )
    #: The error the wire's server sends for a key it refuses.
    bad_key_error = Error(status=401, message="Incorrect API key provided")
    #: Whether the wire gives reasoning (thinking) output.
    reasons = True

    # -- the fixtures a subclass provides ------------------------------------------------------

    @pytest.fixture
    def make_wire_llm(self) -> MakeLLM:
        raise NotImplementedError("a WireConformance subclass provides make_wire_llm")

    # -- chat and chat_stream ------------------------------------------------------------------

    async def test_chat_and_chat_stream_give_the_same_completion(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        reply = Reply(text="The answer is 42.", reasoning="think" if self.reasons else None)
        server.push(reply, reply)
        llm = make_wire_llm()
        whole = await llm.chat("question")
        events, streamed = await _stream(llm, "question")
        for field in ("text", "reasoning", "finish_reason", "tool_calls"):
            assert getattr(whole, field) == getattr(streamed, field), field
        assert whole.text == "The answer is 42."
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == whole.text
        if self.reasons:
            assert whole.reasoning == "think"
            assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "think"

    async def test_text_split_inside_multibyte_characters(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        reply = Reply(text=MULTIBYTE)
        for step in (1, 3, 7):
            server.handler = lambda rec, s=step: Raw(
                chunks=_cut_in_bytes(render_events(reply, rec), s)
            )
            _, c = await _stream(make_wire_llm(), "hi")
            assert c.text == MULTIBYTE, f"split every {step} bytes"

    # -- tools ---------------------------------------------------------------------------------

    async def test_a_parallel_tool_round_trip_keeps_provider_data(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        calls = [
            ToolCallReply(name="weather", arguments={"city": "Paris"}),
            ToolCallReply(name="clock", arguments={"zone": "CET"}),
        ]
        tools = [
            {
                "name": n,
                "description": f"the {n}",
                "parameters": {"type": "object", "properties": {}},
            }
            for n in ("weather", "clock")
        ]
        for stream in (False, True):
            server.clear()
            server.push(
                Reply(tool_calls=calls, reasoning="plan" if self.reasons else None),
                Reply(text="sunny at noon"),
            )
            llm = make_wire_llm()
            first: Completion
            if stream:
                events, first = await _stream(llm, "weather and time?", tools=tools)
                assert any(isinstance(e, ToolCallDelta) for e in events)
            else:
                first = await llm.chat("weather and time?", tools=tools)
            assert [c.name for c in first.tool_calls] == ["weather", "clock"]
            assert [c.parsed_arguments() for c in first.tool_calls] == [
                {"city": "Paris"},
                {"zone": "CET"},
            ]
            assert first.finish_reason == "tool_calls"
            assistant = first.to_message()
            history = [Message(role="user", content="weather and time?"), assistant]
            history += [
                Message(role="tool", tool_call_id=c.id, content=f"{c.name} ok")
                for c in first.tool_calls
            ]
            saved = json.loads(msgspec.json.encode(history))  # as an application saves it
            answer = await llm.chat(saved, tools=tools)
            assert answer.text == "sunny at noon"
            sent = server.requests[-1].body.decode()
            kept = [assistant.provider_data, *(c.provider_data for c in assistant.tool_calls or ())]
            for value in _leaves(kept):
                assert json.dumps(value)[1:-1] in sent, "provider data went back"
            assert "provider_data" not in sent

    # -- usage, truncation ---------------------------------------------------------------------

    async def test_usage_and_reasoning_tokens(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        reply = Reply(text="one two three", reasoning="a b" if self.reasons else None)
        server.push(reply, reply)
        llm = make_wire_llm()
        for c in (await llm.chat("hi"), (await _stream(llm, "hi"))[1]):
            u = c.usage
            assert u is not None and u.input_tokens > 0 and u.output_tokens > 0
            assert u.total_tokens == u.input_tokens + u.output_tokens
            # Output tokens include the reasoning tokens, on every wire.
            assert 0 <= u.reasoning_tokens <= u.output_tokens
            assert 0 <= u.cached_tokens <= u.input_tokens

    async def test_truncation_is_finish_reason_length(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        cut = Reply(text="cut sh", finish_reason="length", incomplete_reason="max_output_tokens")
        server.push(cut, cut)
        llm = make_wire_llm()
        assert (await llm.chat("hi")).finish_reason == "length"
        assert (await _stream(llm, "hi"))[1].finish_reason == "length"

    # -- errors --------------------------------------------------------------------------------

    async def test_a_refused_key_leaves_rotation(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        bad = self.bad_key_error
        server.handler = lambda rec: bad if rec.api_key == "sk-refused" else None
        llm = make_wire_llm(keys=("sk-refused", "sk-good"))
        for _ in range(4):
            await llm.chat("hi")
        assert [k["state"] for k in llm.key_pool.status()] == ["disabled", "ok"]
        assert sum(r.api_key == "sk-refused" for r in server.requests) == 1
        server.handler = None
        server.push(bad)
        with pytest.raises(AuthenticationError) as caught:
            await make_wire_llm(keys=("sk-alone",)).chat("hi")
        assert caught.value.kind == "auth"

    async def test_a_rate_limit_rests_the_key_as_long_as_asked(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(Error(status=429, message="slow down", headers={"retry-after": "60"}))
        llm = make_wire_llm(keys=("sk-a", "sk-b"))
        assert (await llm.chat("hi")).text
        first = llm.key_pool.status()[0]
        assert first["state"] == "cooling" and first["cooldown_seconds"] > 50
        assert [r.api_key for r in server.requests] == ["sk-a", "sk-b"]

    async def test_a_server_error_is_retried(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(Error(status=503, message="overloaded"), Error(status=500))
        llm = make_wire_llm(keys=("sk-a",))
        assert (await llm.chat("hi")).text
        assert len(server.requests) == 3

    async def test_a_bad_request_is_not_retried(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(Error(status=400, message="bad field"))
        with pytest.raises(BadRequestError) as caught:
            await make_wire_llm().chat("hi")
        assert caught.value.kind == "bad_request" and len(server.requests) == 1

    async def test_a_context_overflow_is_classified(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(self.context_length_error)
        with pytest.raises(BadRequestError) as caught:
            await make_wire_llm().chat("hi")
        assert caught.value.kind == "context_length" and len(server.requests) == 1

    # -- broken streams, cancellation ----------------------------------------------------------

    async def test_a_stream_cut_mid_event(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        reply = Reply(text="one two three four five six")

        def cut(rec: RecordedRequest) -> Raw:
            events = render_events(reply, rec)
            half = len(events) // 2
            head = b"".join(events[:half]) + events[half][: len(events[half]) // 2]
            return Raw(chunks=[head], close=True)

        server.handler = cut
        with pytest.raises(StreamError) as caught:
            await _stream(make_wire_llm(max_retries=0), "hi")
        partial = caught.value.partial
        assert partial is None or reply.text.startswith(partial.text)

    async def test_cancellation_leaks_nothing(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(Fault("never_ending"))
        llm = make_wire_llm(keys=("sk-a",))
        first = asyncio.Event()

        async def read() -> None:
            async for _ in llm.chat_stream("hi"):
                first.set()

        task = asyncio.create_task(read())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert llm.key_pool.in_flight(0) == 0
        await server.client_aborts_reached(1)

    # -- typed output --------------------------------------------------------------------------

    async def test_typed_output_through_llm_function(
        self, server: LLMTestServer, make_wire_llm: MakeLLM
    ) -> None:
        server.push(Reply(text='{"name": "Paris", "population": 2100000}'))
        llm = make_wire_llm()

        @async_llm_function(llm)
        async def biggest_city(country: str) -> City:  # type: ignore[empty-body]
            """The biggest city of {country}."""

        assert await biggest_city("France") == City("Paris", 2100000)
