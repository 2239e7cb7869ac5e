"""A ModelGroup with the LiteLLM proxy (a peer nobody here wrote) as one member and the test
server as another, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from llmplug import Done, ModelGroup, OpenAICompatible
from llmplug.testing import Error, LLMTestServer, Reply

pytestmark = pytest.mark.litellm

MakeLiteLLM = Callable[..., OpenAICompatible]
MOCK_TEXT = "hi there from mock"


async def test_a_failing_litellm_member_hands_its_calls_to_the_test_server(
    make_litellm: MakeLiteLLM, make_llm: Callable[..., OpenAICompatible], server: LLMTestServer
) -> None:
    server.default = Reply(text="from the test server")
    broken = make_litellm(model="fake-500", max_retries=0)
    group = ModelGroup([broken, make_llm()], strategy="weighted", failure_threshold=2)
    texts = [(await group.chat(f"call {i}")).text for i in range(6)]
    assert texts == ["from the test server"] * 6
    assert len(server.requests) == 6  # each call answered once
    assert group.status()["litellm/fake-500"]["state"] == "open"


@pytest.mark.parametrize("stream", [False, True])
async def test_litellm_is_the_fallback_when_the_test_server_is_down(
    make_litellm: MakeLiteLLM,
    make_llm: Callable[..., OpenAICompatible],
    server: LLMTestServer,
    stream: bool,
) -> None:
    server.default = Error(status=503, message="down")
    group = ModelGroup([make_llm(max_retries=0)], fallbacks=[make_litellm(model="fake")])
    if stream:
        events = [e async for e in group.chat_stream("hi")]
        assert isinstance(events[-1], Done)
        text = events[-1].completion.text
    else:
        text = (await group.chat("hi")).text
    assert text == MOCK_TEXT
    assert len(server.requests) == 1
