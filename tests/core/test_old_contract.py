"""A plugin written against the contract as it was before issue 19 (no classify_error, no
complete, no SERVES, no check_key_strategy, a parser raising StreamError with a status only)
still loads and works, with no warning: everything new is optional."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import msgspec
import pytest

from llmplug import (
    APIKeyPool,
    Call,
    FunctionCall,
    KeyLease,
    Message,
    MessageToolCall,
    OpenAICompatible,
    RateLimitError,
    Registry,
    SSEEvent,
    StreamError,
    StreamEvent,
    default_plugins,
    hookimpl,
)
from llmplug.testing import LLMTestServer, Raw

from ._wires import OLLAMA, Ollama, OllamaParser, ndjson


class LastKey:
    """A key strategy of the old contract: select_key only."""

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        if strategy != "last_healthy":
            return None
        return pool.lease(pool.healthy()[-1])


class OldErrors(OllamaParser):
    """A parser of the old contract that raises an in-stream error with its status only."""

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if event.data.startswith(b'{"error"'):
            raise StreamError("overloaded", partial=self.result(), status=503)
        return super().feed(event)

    def rate_limits(self, headers: Mapping[str, str]) -> None:
        return None


class OldWire(Ollama):
    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        return OldErrors(call) if wire == OLLAMA else None


@pytest.fixture
def llm(server: LLMTestServer) -> OpenAICompatible:
    registry = Registry(entry_points=False, plugins=[OldWire(), LastKey(), *default_plugins()])
    pool = APIKeyPool(["sk-a", "sk-b"], "old", strategy="last_healthy", shared=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing deprecated is touched
        return OpenAICompatible(
            pool, "m", server.base_url, wire=OLLAMA, registry=registry, retry_delay=0.001
        )


def body(text: str) -> Raw:
    doc = {"message": {"content": text}, "done": True, "prompt_eval_count": 2, "eval_count": 1}
    return Raw(body=msgspec.json.encode(doc), content_type="application/json")


async def test_an_old_wire_and_strategy_work_and_errors_are_judged_by_status(
    server: LLMTestServer, llm: OpenAICompatible
) -> None:
    server.push(body("one"))
    assert (await llm.chat("hi")).text == "one"
    assert server.requests[-1].api_key == "sk-b"
    # A 401 in OpenAI's shape, with no classify_error: the key leaves rotation as before.
    server.push(
        Raw(status=401, body=b'{"error": {"message": "bad key"}}', content_type="application/json"),
        body("two"),
    )
    assert (await llm.chat("hi")).text == "two"
    assert [k["state"] for k in llm.key_pool.status()] == ["ok", "disabled"]
    # A status-only StreamError before output: retried by its status, as before.
    server.push(
        Raw(chunks=[b'{"error": "overloaded"}\n'], content_type="application/x-ndjson"),
        Raw(chunks=ndjson({"message": {"content": "three"}, "done": True})),
    )
    events = [e async for e in llm.chat_stream("hi")]
    assert events[-1].completion.text == "three"  # type: ignore[union-attr]
    server.push(
        Raw(status=429, body=b'{"error": {"message": "slow"}}', content_type="application/json")
    )
    async with OpenAICompatible(
        APIKeyPool(["sk-c"], "old", shared=False),
        "m",
        server.base_url,
        wire=OLLAMA,
        registry=Registry(entry_points=False, plugins=[OldWire(), *default_plugins()]),
        max_retries=0,
    ) as other:
        with pytest.raises(RateLimitError) as caught:
            await other.chat("hi")
    assert caught.value.kind == "rate_limit"
    await llm.aclose()


def test_a_history_of_the_old_shape_is_made_and_saved_as_before() -> None:
    call = MessageToolCall(id="c1", function=FunctionCall("f", "{}"), type="function")
    message = Message(role="assistant", tool_calls=[call])
    assert msgspec.json.decode(msgspec.json.encode(message)) == {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "function": {"name": "f", "arguments": "{}"}, "type": "function"}
        ],
    }
    assert (
        msgspec.convert(
            {"id": "c1", "function": {"name": "f", "arguments": ""}}, type=MessageToolCall
        ).type
        == "function"
    )
