"""The gemini wire against LiteLLM's own ``/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent`` routes: a Gemini-format server nobody here wrote, over the proxy's
mocked models and over real inference (its ``llama-gemini`` model, which the proxy translates to
Chat Completions for llama.cpp's llama-server with the tiny random-weight model).

Random weights write random text, so the real-inference tests assert shapes only: text or a
``length`` finish, finish reasons mapped back from Gemini's, and token counts that add up."""

from __future__ import annotations

import pytest
from llmplug_gemini import GeminiCompatible

from llmplug import (
    APIKeyPool,
    AuthenticationError,
    Completion,
    Done,
    OpenAICompatible,
    TextDelta,
    Tool,
    ToolCallDelta,
)

from .conftest import LLAMA_KEY, LlamaServer, MakeLiteLLM

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


# -- real inference: LiteLLM's Gemini routes in front of llama-server -------------------------

LLAMA_MODEL = "llama-gemini"  # the proxy's model backed by llama-server (config_customauth.yaml)

# An integer argument keeps the grammar-constrained call short (see test_llama_server.py).
LUCKY = Tool(
    name="lucky_number",
    description="The lucky number of a digit.",
    parameters={
        "type": "object",
        "properties": {"digit": {"type": "integer"}},
        "required": ["digit"],
    },
)


@pytest.fixture
def llama_gemini(
    make_litellm: MakeLiteLLM, litellm_url: str, llama_behind_litellm: LlamaServer
) -> GeminiCompatible:
    # No retries: a failed forward must show, not be papered over.
    return gemini(make_litellm, litellm_url, model=LLAMA_MODEL, max_retries=0)


def assert_inferred(c: Completion, max_tokens: int) -> None:
    """What real inference through the proxy gives, whatever the random weights write."""
    assert c.finish_reason in ("stop", "length"), c
    assert c.text or c.finish_reason == "length", c
    assert not c.tool_calls, c
    u = c.usage
    assert u is not None and u.input_tokens > 0 and u.output_tokens > 0, c
    assert u.output_tokens <= max_tokens
    assert u.total_tokens == u.input_tokens + u.output_tokens
    if c.finish_reason == "length":
        assert u.output_tokens == max_tokens


async def test_real_inference_a_call_and_a_stream(
    llama_gemini: GeminiCompatible, llama_behind_litellm: LlamaServer
) -> None:
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    c = await llama_gemini.chat(prompt, max_tokens=16)
    assert_inferred(c, 16)
    events = [e async for e in llama_gemini.chat_stream(prompt, max_tokens=16)]
    assert sum(isinstance(e, Done) for e in events) == 1
    done = events[-1]
    assert isinstance(done, Done)
    s = done.completion
    assert_inferred(s, 16)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == s.text
    # The same prompt both ways: the proxy forwards it alike, so the prompt counts agree.
    assert c.usage is not None and s.usage is not None
    assert s.usage.input_tokens == c.usage.input_tokens
    # And it is the prompt llama-server itself counts when asked directly on Chat Completions:
    # the proxy forwarded the Gemini request (systemInstruction and all) to the real model.
    pool = APIKeyPool([LLAMA_KEY], "llama-direct", shared=False)
    async with OpenAICompatible(
        api_key_pool=pool, model_name="tiny", base_url=llama_behind_litellm.base_url
    ) as direct:
        d = await direct.chat(prompt, max_tokens=1)
    assert d.usage is not None and d.usage.input_tokens == c.usage.input_tokens


async def test_real_inference_cut_at_max_tokens_is_length(llama_gemini: GeminiCompatible) -> None:
    # The model never ends its turn on the first token (llama_model.py), so one token is always
    # a cut: llama-server's "length" comes back through the proxy as Gemini's MAX_TOKENS, and
    # the wire maps that to "length", called and streamed alike.
    c = await llama_gemini.chat("Hello!", max_tokens=1)
    events = [e async for e in llama_gemini.chat_stream("Hello!", max_tokens=1)]
    done = events[-1]
    assert isinstance(done, Done)
    for got in (c, done.completion):
        assert got.finish_reason == "length", got
        assert got.usage is not None and got.usage.output_tokens == 1, got
        assert got.text, got


async def test_real_inference_takes_a_tool_declaration(llama_gemini: GeminiCompatible) -> None:
    # The model calls a tool whenever one is offered (llama_model.py): the declaration went
    # through the proxy to llama-server as a Chat Completions tool, and the call came back as a
    # Gemini functionCall.
    ask = "What is the lucky number of 3?"
    c = await llama_gemini.chat(ask, tools=[LUCKY], max_tokens=128)
    assert c.finish_reason == "tool_calls", c
    [call] = c.tool_calls
    assert call.name == "lucky_number"
    args = call.parsed_arguments()
    assert list(args) == ["digit"] and isinstance(args["digit"], int), call.arguments
    assert c.usage is not None and c.usage.input_tokens > 0 and c.usage.output_tokens > 0
    events = [e async for e in llama_gemini.chat_stream(ask, tools=[LUCKY], max_tokens=128)]
    done = events[-1]
    assert isinstance(done, Done) and done.completion.finish_reason == "tool_calls"
    [streamed] = done.completion.tool_calls
    assert streamed.name == "lucky_number"
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas and "".join(d.arguments for d in deltas) == streamed.arguments
