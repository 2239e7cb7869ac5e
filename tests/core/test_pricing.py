"""Prices per million tokens: each reply's cost, the running total, and provider.json's field."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplug import ConfigError, Done, OpenAICompatible, Pricing, Usage
from llmplug.testing import LLMTestServer, Reply
from tests.conftest import MakeLLM

USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 200,
    "total_tokens": 1200,
    "prompt_tokens_details": {"cached_tokens": 600},
    "completion_tokens_details": {"reasoning_tokens": 50},
}


def test_cost_prices_cached_input_apart() -> None:
    p = Pricing(input=2.0, output=8.0, cached_input=0.5)
    usage = Usage(input_tokens=1000, output_tokens=200, total_tokens=1200, cached_tokens=600)
    assert p.cost(usage) == pytest.approx((400 * 2.0 + 600 * 0.5 + 200 * 8.0) / 1e6)
    assert Pricing(input=2.0, output=8.0).cost(usage) == pytest.approx((1000 * 2 + 200 * 8) / 1e6)


async def test_completions_and_usage_carry_the_cost(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(pricing={"input": 2.0, "output": 8.0, "cached_input": 0.5})
    one = (400 * 2.0 + 600 * 0.5 + 200 * 8.0) / 1e6
    server.push(Reply(text="a", usage=USAGE, headers={"x-request-id": "req_1"}))
    c = await llm.chat("hi")
    assert c.cost == pytest.approx(one)
    assert c.request_id == "req_1"
    server.push(Reply(text="b", usage=USAGE))
    done = [e async for e in llm.chat_stream("hi") if isinstance(e, Done)]
    assert done[0].completion.cost == pytest.approx(one)
    assert done[0].completion.request_id is None
    assert llm.usage.cost == pytest.approx(2 * one)
    assert llm.usage.last_cost == pytest.approx(one)


async def test_no_pricing_or_no_usage_is_no_cost(server: LLMTestServer, make_llm: MakeLLM) -> None:
    c = await make_llm().chat("hi")
    assert c.cost is None
    server.push(Reply(text="a", usage_style="none"))
    c = await make_llm(pricing=Pricing(input=1, output=1)).chat("hi")
    assert c.cost is None


def test_provider_json_pricing(tmp_path: Path) -> None:
    path = tmp_path / "provider.json"
    entry = '"model_name": "m", "api_keys": ["sk-x"], "base_url": "http://127.0.0.1:1/v1"'
    path.write_text(f'{{"p": [{{{entry}, "pricing": {{"input": 1.5, "output": 6}}}}]}}')
    llm = OpenAICompatible.load_from_json_file(path)["p"]["m"]
    assert llm.pricing == Pricing(input=1.5, output=6.0)
    path.write_text(f'{{"p": [{{{entry}, "pricing": {{"input": 1.5, "ouput": 6}}}}]}}')
    with pytest.raises(ConfigError, match=r"model entry 0 \(m\): field 'pricing'"):
        OpenAICompatible.load_from_json_file(path)
    path.write_text(f'{{"p": [{{{entry}, "pricing": {{"input": -1, "output": 6}}}}]}}')
    with pytest.raises(ConfigError, match="input >= 0"):
        OpenAICompatible.load_from_json_file(path)
