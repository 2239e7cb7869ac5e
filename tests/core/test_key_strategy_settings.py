"""Key strategy settings: ``"key_strategy": {"name": "weighted", "weights": [3, 1]}`` in
provider.json (or the same in code) reaches the plugin, which checks it as the interface is
built: bad settings fail the load, naming the field, before any request. The strategy is an
outsider's, written from docs/plugins.md."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llmplug import (
    APIKeyPool,
    Call,
    ConfigError,
    KeyLease,
    OpenAICompatible,
    Registry,
    default_plugins,
    hookimpl,
)
from llmplug.testing import LLMTestServer


class Weighted:
    """``weighted``: each key takes its weight's share of the calls (smooth weighted
    round-robin over the healthy keys)."""

    @hookimpl
    def check_key_strategy(
        self, strategy: str, settings: dict[str, Any], pool: APIKeyPool
    ) -> bool | None:
        if strategy != "weighted":
            return None
        weights = settings.get("weights")
        if not isinstance(weights, list) or len(weights) != len(pool):
            raise ConfigError(f"one weight per key ({len(pool)}), got {weights!r}", field="weights")
        for i, w in enumerate(weights):
            if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
                raise ConfigError(
                    f"a weight must be a number > 0, got {w!r}", field=f"weights[{i}]"
                )
        unknown = sorted(set(settings) - {"weights"})
        if unknown:
            raise ConfigError("unknown setting", field=unknown[0])
        return True

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        if strategy != "weighted":
            return None
        weights: list[float] = pool.strategy_settings["weights"]
        score: list[float] = pool.strategy_state.setdefault("score", [0.0] * len(pool))
        healthy = pool.healthy()
        for i in healthy:
            score[i] += weights[i]
        best = max(healthy, key=lambda i: score[i])
        score[best] -= sum(weights[i] for i in healthy)
        return pool.lease(best)


def registry() -> Registry:
    return Registry(entry_points=False, plugins=[Weighted(), *default_plugins()])


def provider_file(tmp_path: Path, base_url: str, strategy: Any) -> Path:
    path = tmp_path / "provider.json"
    entry = {
        "model_name": "m",
        "api_keys": ["sk-a", "sk-b"],
        "base_url": base_url,
        "key_strategy": strategy,
        "rate_limit_capacity": 1000,
        "rate_limit_refill_rate": 1000,
    }
    path.write_text(json.dumps({"acme": [entry]}))
    return path


async def test_weights_from_provider_json_reach_the_strategy(
    server: LLMTestServer, tmp_path: Path
) -> None:
    path = provider_file(tmp_path, server.base_url, {"name": "weighted", "weights": [3, 1]})
    llm = OpenAICompatible.load_from_json_file(path, registry=registry())["acme"]["m"]
    for _ in range(8):
        await llm.chat("hi")
    assert Counter(r.api_key for r in server.requests) == {"sk-a": 6, "sk-b": 2}
    await llm.aclose()


async def test_weights_in_code_reach_the_strategy(server: LLMTestServer) -> None:
    pool = APIKeyPool(
        ["sk-a", "sk-b"], "acme", strategy={"name": "weighted", "weights": [1, 3]}, shared=False
    )
    llm = OpenAICompatible(
        api_key_pool=pool,
        model_name="m",
        base_url=server.base_url,
        rate_limit_capacity=1000,
        rate_limit_refill_rate=1000,
        registry=registry(),
    )
    for _ in range(8):
        await llm.chat("hi")
    assert Counter(r.api_key for r in server.requests) == {"sk-a": 2, "sk-b": 6}
    await llm.aclose()


@pytest.mark.parametrize(
    ("strategy", "field"),
    [
        ({"name": "weighted", "weights": [3]}, "key_strategy.weights"),
        ({"name": "weighted", "weights": [3, -1]}, "key_strategy.weights[1]"),
        ({"name": "weighted", "weights": [3, 1], "wieghts": 2}, "key_strategy.wieghts"),
        ({"name": "round_robin", "weights": [3, 1]}, "key_strategy.weights"),
        ({"weights": [3, 1]}, "key_strategy.name"),
    ],
)
def test_bad_settings_fail_the_load_naming_the_field(
    server: LLMTestServer, tmp_path: Path, strategy: Any, field: str
) -> None:
    path = provider_file(tmp_path, server.base_url, strategy)
    with pytest.raises(ConfigError) as caught:
        OpenAICompatible.load_from_json_file(path, registry=registry())
    assert caught.value.field == field
    assert str(path) in str(caught.value) and f"field {field!r}" in str(caught.value)
    assert "model entry 0" in str(caught.value)
    assert server.requests == []


def test_settings_no_plugin_checks_fail_the_load(server: LLMTestServer) -> None:
    pool = APIKeyPool(["sk-a"], "acme", strategy={"name": "least_loaded", "x": 1}, shared=False)
    with pytest.raises(ConfigError, match="least_loaded takes no settings") as caught:
        OpenAICompatible(api_key_pool=pool, model_name="m", base_url=server.base_url)
    assert caught.value.field == "key_strategy.x"


class Unchecked:
    """A strategy plugin written before settings existed: no check_key_strategy."""

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        return pool.lease(0) if strategy == "first" else None


def test_a_strategy_without_a_check_still_loads_but_takes_no_settings(
    server: LLMTestServer,
) -> None:
    reg = Registry(entry_points=False, plugins=[Unchecked(), *default_plugins()])
    pool = APIKeyPool(["sk-a"], "acme", strategy="first", shared=False)
    OpenAICompatible(api_key_pool=pool, model_name="m", base_url=server.base_url, registry=reg)
    pool = APIKeyPool(["sk-a"], "acme", strategy={"name": "first", "n": 1}, shared=False)
    with pytest.raises(ConfigError, match="takes no settings") as caught:
        OpenAICompatible(api_key_pool=pool, model_name="m", base_url=server.base_url, registry=reg)
    assert caught.value.field == "key_strategy.n"
