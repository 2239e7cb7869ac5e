"""The gemini wire against LiteLLM's own ``/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent`` routes: a Gemini-format server nobody here wrote (over the proxy's
mocked models)."""

from __future__ import annotations

import pytest
from llmplug_gemini import GeminiCompatible

from llmplug import AuthenticationError, Done, TextDelta

from .conftest import MakeLiteLLM

pytestmark = pytest.mark.litellm


def gemini(make: MakeLiteLLM, litellm_url: str, **kw: object) -> GeminiCompatible:
    base = litellm_url.removesuffix("/v1") + "/v1beta"
    llm: GeminiCompatible = make(interface=GeminiCompatible, base_url=base, **kw)
    return llm


async def test_a_call_and_a_stream(make_litellm: MakeLiteLLM, litellm_url: str) -> None:
    llm = gemini(make_litellm, litellm_url)
    c = await llm.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert c.text == "hi there from mock"
    assert c.finish_reason == "stop"
    assert c.usage is not None and c.usage.output_tokens > 0
    events = [e async for e in llm.chat_stream("hi", max_tokens=50)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hi there from mock"
    done = events[-1]
    assert isinstance(done, Done) and done.completion.finish_reason == "stop"
    assert done.completion.usage is not None and done.completion.usage.output_tokens > 0


async def test_the_key_in_the_query_is_taken_too(
    make_litellm: MakeLiteLLM, litellm_url: str
) -> None:
    llm = gemini(make_litellm, litellm_url, api_params={"gemini_key_in": "query"})
    assert (await llm.chat("hi")).text == "hi there from mock"


async def test_a_refused_key(make_litellm: MakeLiteLLM, litellm_url: str) -> None:
    llm = gemini(make_litellm, litellm_url, keys=["sk-not-a-key"])
    with pytest.raises(AuthenticationError):
        await llm.chat("hi")
    assert llm.key_pool.status()[0]["state"] == "disabled"
