"""``Completion.response_id``: the id each wire's reply body gives the response, whether the
reply streamed or not, so a trace or a log line can name the provider's record of it."""

from __future__ import annotations

import re

import pytest

from llmplug import Done, LLMInterface, OpenAIResponsesCompatible
from llmplug.testing import LLMTestServer, Reply
from tests.conftest import MakeLLM

WIRES = [
    ("openai-chat", None, r"chatcmpl-\w+"),
    ("openai-responses", OpenAIResponsesCompatible, r"resp_\w+"),
    ("anthropic-messages", LLMInterface, r"msg_\w+"),
]


@pytest.mark.parametrize(("wire", "interface", "shape"), WIRES, ids=[w[0] for w in WIRES])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_every_wire_reads_the_response_id_from_the_body(
    server: LLMTestServer,
    make_llm: MakeLLM,
    wire: str,
    interface: type[LLMInterface] | None,
    shape: str,
    stream: bool,
) -> None:
    kw = {} if interface is None else {"interface": interface, "wire": wire}
    llm = make_llm(**kw)
    server.push(Reply(text="one"), Reply(text="two"))
    if stream:
        events = [e async for e in llm.chat_stream("hi")]
        done = events[-1]
        assert isinstance(done, Done)
        first = done.completion
        second = [e async for e in llm.chat_stream("hi")][-1].completion  # type: ignore[union-attr]
    else:
        first, second = await llm.chat("hi"), await llm.chat("hi")
    assert first.response_id is not None and re.fullmatch(shape, first.response_id)
    assert second.response_id != first.response_id  # the server's, not one made up here
