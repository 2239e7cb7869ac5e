"""The anthropic-messages wire against LiteLLM's own ``/v1/messages`` route, a second server
nobody here wrote that speaks Anthropic Messages (over the proxy's mocked models)."""

from __future__ import annotations

import pytest

from llmplug import AuthenticationError, Done, LLMInterface, RateLimitError, TextDelta

from .conftest import MakeLiteLLM

pytestmark = pytest.mark.litellm


def messages(make: MakeLiteLLM, model: str = "fake", **kw: object) -> LLMInterface:
    llm: LLMInterface = make(model=model, interface=LLMInterface, wire="anthropic-messages", **kw)
    return llm


async def test_a_call_and_a_stream(make_litellm: MakeLiteLLM) -> None:
    llm = messages(make_litellm)
    c = await llm.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert c.text == "hi there from mock"
    assert c.finish_reason == "stop"
    assert c.usage is not None and c.usage.output_tokens > 0
    # LiteLLM answers a streamed Messages request on a mocked model with one JSON body: the
    # same events come out of it as from a stream.
    events = [e async for e in llm.chat_stream("hi", max_tokens=50)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hi there from mock"
    assert isinstance(events[-1], Done) and events[-1].completion.finish_reason == "stop"


async def test_errors_in_anthropics_shape(make_litellm: MakeLiteLLM) -> None:
    with pytest.raises(AuthenticationError):
        await messages(make_litellm, keys=["sk-not-a-key"]).chat("hi")
    with pytest.raises(RateLimitError, match="mock rate limit error") as info:
        await messages(make_litellm, model="fake-429", max_retries=0).chat("hi")
    assert info.value.type == "rate_limit_error"
