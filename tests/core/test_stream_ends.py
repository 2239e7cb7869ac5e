"""Stream ends: a wire whose stream has no end marker (Gemini's just stops) says the answer is
``complete`` when its finish reason comes; the core reads on to the end of the body, so a
trailing usage chunk is not lost, and a stream that stops there is not truncated."""

from __future__ import annotations

from typing import Any

import pytest

from llmplug import (
    Registry,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    Usage,
    default_plugins,
)
from llmplug.testing import LLMTestServer, Raw

from ._wires import OllamaParser, Variant, _chunk, ndjson

WIRE = "no-end-marker"


class NoEndMarker(OllamaParser):
    """Ollama's chunks, but the chunk with ``done_reason`` is not the last: usage comes after
    it, in a chunk of its own, and the body just ends."""

    def __init__(self, call: Any) -> None:
        super().__init__(call)
        self.complete = False

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        chunk = _chunk.decode(event.data)
        if chunk.done_reason:
            self.complete = True
            self._reason = chunk.done_reason
        if chunk.eval_count:
            total = chunk.prompt_eval_count + chunk.eval_count
            self._usage = Usage(chunk.prompt_eval_count, chunk.eval_count, total)
        text = chunk.message.content if chunk.message else ""
        if text:
            self._text.append(text)
            return [TextDelta(text)]
        return []


@pytest.fixture
def llm(make_llm: Any) -> Any:
    registry = Registry(
        entry_points=False, plugins=[Variant(WIRE, NoEndMarker), *default_plugins()]
    )
    return make_llm(wire=WIRE, registry=registry)


async def last(llm: Any) -> Any:
    events = [e async for e in llm.chat_stream("hi")]
    return events[-1].completion


async def test_a_usage_chunk_after_the_finish_reason_is_read(
    server: LLMTestServer, llm: Any
) -> None:
    body = ndjson(
        {"message": {"content": "Hel"}},
        {"message": {"content": "lo"}, "done_reason": "stop"},
        {"prompt_eval_count": 5, "eval_count": 2},
    )
    server.push(Raw(chunks=body, content_type="application/x-ndjson"))
    done = await last(llm)
    assert (done.text, done.finish_reason) == ("Hello", "stop")
    assert done.usage == Usage(5, 2, 7)


async def test_a_stream_that_stops_after_a_complete_answer_is_whole(
    server: LLMTestServer, llm: Any
) -> None:
    server.push(
        Raw(
            chunks=ndjson({"message": {"content": "Hi"}, "done_reason": "stop"}),
            content_type="application/x-ndjson",
            close=True,
        )
    )
    done = await last(llm)  # cut right after the answer: still whole, only usage is missing
    assert (done.text, done.usage) == ("Hi", None)


async def test_a_stream_that_stops_before_the_answer_is_complete_is_truncated(
    server: LLMTestServer, llm: Any
) -> None:
    server.push(
        Raw(chunks=ndjson({"message": {"content": "Hel"}}), content_type="application/x-ndjson")
    )
    with pytest.raises(StreamError, match="truncated") as caught:
        await last(llm)
    assert caught.value.partial is not None and caught.value.partial.text == "Hel"
