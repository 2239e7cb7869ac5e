"""A stream leaves no async generator of the HTTP client open behind it, however it ends: the
caller leaving after the first event, an error in the stream after output, a stall cut by the
call's deadline, or its end. Left open, asyncio closed them at the loop's end all at once (an
inner one while the outer one was closing it) or the garbage collector did, on any thread:
"Exception ignored in: <async_generator ...>: async generator already executing"."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncGenerator, Iterator
from typing import Any, cast

import pytest

from llmplug import Done, LLMError, StreamError
from llmplug.testing import Error, LLMTestServer, Reply
from tests.conftest import MakeLLM


@contextlib.contextmanager
def http_generators() -> Iterator[list[Any]]:
    """httpx2's async generators first iterated inside the block: those that close another
    generator in their ``finally`` (asyncio's own hooks are still called: the loop tracks them
    as before). httpcore2's innermost one closes nothing and is left to asyncio, as before."""
    made: list[Any] = []
    old = sys.get_asyncgen_hooks()

    def firstiter(agen: Any) -> None:
        if "httpx2" in agen.ag_code.co_filename:
            made.append(agen)
        if old.firstiter is not None:
            old.firstiter(agen)

    sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=old.finalizer)
    try:
        yield made
    finally:
        sys.set_asyncgen_hooks(firstiter=old.firstiter, finalizer=old.finalizer)


def still_open(made: list[Any]) -> list[str]:
    return [agen.__qualname__ for agen in made if agen.ag_frame is not None]


async def test_a_stream_the_caller_leaves_closes_the_clients_generators(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Reply(text="one two three four five six"))
    llm = make_llm()
    with http_generators() as made:
        stream = cast("AsyncGenerator[object, None]", llm.chat_stream("hi"))
        async with contextlib.aclosing(stream) as events:
            async for _ in events:
                break
    assert made  # the stream was read through them
    assert still_open(made) == []


async def test_a_stream_broken_after_output_closes_the_clients_generators(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=500, message="overloaded", in_stream_after=3))
    llm = make_llm()
    with http_generators() as made, pytest.raises(StreamError):
        async for _ in llm.chat_stream("hi"):
            pass
    assert made
    assert still_open(made) == []


async def test_a_stream_cut_by_its_deadline_or_read_to_its_end_closes_them_too(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Reply(text="a b c", chunk_delay=30.0), Reply(text="a b c"))
    llm = make_llm(max_retries=0)
    with http_generators() as made:
        with pytest.raises(LLMError):
            async for _ in llm.chat_stream("hi", total_timeout=0.3):
                pass
        events = [e async for e in llm.chat_stream("hi")]
    assert isinstance(events[-1], Done)
    assert still_open(made) == []
