"""provider.json "groups": built on the file's own interfaces, errors naming file and field."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from llmplug import ConfigError, ModelGroup, OpenAICompatible, llm_function
from llmplug.testing import Error, LLMTestServer, Reply

LLAMA, GROQ = "together/llama-3", "groq/llama-3-groq"


def provider_file(tmp_path: Path, a: str, b: str, groups: Any) -> Path:
    def entry(url: str, model: str, **extra: Any) -> dict[str, Any]:
        return {
            "model_name": model,
            "api_keys": [f"sk-{model}"],
            "base_url": url,
            "max_retries": 0,
            "rate_limit_capacity": 1000,
            "rate_limit_refill_rate": 1000,
            **extra,
        }

    data = {
        "together": [entry(a, "llama-3", context_window=8_000)],
        "groq": [entry(a, "llama-3-groq", context_window=8_000)],
        "openai": [entry(b, "gpt-4.1", context_window=1_000_000)],
        "groups": groups,
    }
    path = tmp_path / "provider.json"
    path.write_text(json.dumps(data))
    return path


async def test_a_group_from_the_file_answers_through_its_members_and_fallbacks(
    tmp_path: Path, server: LLMTestServer
) -> None:
    with LLMTestServer() as other:
        path = provider_file(
            tmp_path,
            server.base_url,
            other.base_url,
            {
                "fast-llama": {
                    "members": ["together/llama-3", "groq/llama-3-groq"],
                    "strategy": "least_loaded",
                    "fallbacks": ["openai/gpt-4.1"],
                    "context_window_fallbacks": ["openai/gpt-4.1"],
                }
            },
        )
        models = OpenAICompatible.load_from_json_file(path)
        group = models.groups["fast-llama"]
        assert isinstance(group, ModelGroup) and group.strategy == "least_loaded"
        assert [m.llm for m in group.members] == [
            models["together"]["llama-3"],
            models["groq"]["llama-3-groq"],
        ]
        assert "groups" not in models  # the providers are as before

        @llm_function(llm_interface=group)
        async def echo(text: str) -> str:
            """Repeat the text."""

        server.default = Error(status=503, message="down")
        other.default = Reply(text="from openai")
        assert await echo("hi") == "from openai"
        assert {r.model for r in server.requests} == {"llama-3", "llama-3-groq"}
        await group.aclose()


@pytest.mark.parametrize(
    ("groups", "error"),
    [
        (
            {"g": {"members": ["together/llama-4"]}},
            "group 'g': field 'members[0]': no model 'together/llama-4' in this file",
        ),
        (
            {"g": {"members": ["together/llama-3"], "fallbacks": ["nowhere"]}},
            "group 'g': field 'fallbacks[0]': no model 'nowhere'",
        ),
        (
            {"g": {"members": ["together/llama-3"], "context_window_fallbacks": ["x/y"]}},
            "group 'g': field 'context_window_fallbacks[0]': no model 'x/y'",
        ),
        ({"g": {"members": ["together/llama-3"], "stratgy": "cost"}}, "field 'stratgy'"),
        ({"g": {"members": ["together/llama-3"], "strategy": "fastest"}}, "field 'strategy'"),
        ({"g": {"members": ["together/llama-3"], "strategy": 5}}, "g': field 'strategy': Exp"),
        ({"g": {}}, "group 'g': field 'members': missing"),
        ({"g": {"members": []}}, "group 'g': field 'members': no members"),
        ({"g": {"members": "together/llama-3"}}, "group 'g': field 'members': Expected `array`"),
        (
            {"g": {"members": [LLAMA, GROQ], "weights": [1]}},
            "group 'g': field 'weights': 1 weights for 2 members",
        ),
        (
            {"g": {"members": [LLAMA, GROQ], "weights": [1, 0]}},
            "group 'g': field 'weights[1]': weights[1] must be > 0, got 0",
        ),
        (
            {"g": {"members": [LLAMA, GROQ], "weights": [1, "heavy"]}},
            "group 'g': field 'weights[1]': Expected `float`, got `str`",
        ),
        (
            {"g": {"members": [LLAMA], "failure_threshold": 0}},
            "group 'g': field 'failure_threshold': failure_threshold must be >= 1",
        ),
        (
            {"g": {"members": [LLAMA], "cooldown": -1}},
            "group 'g': field 'cooldown': cooldown must be >= 0 seconds",
        ),
        ({"g": {"members": [LLAMA], "fallbacks": "h"}}, "group 'g': field 'fallbacks': Exp"),
        (
            {
                "g": {"members": ["together/llama-3"], "fallbacks": ["h"]},
                "h": {"members": ["groq/llama-3-groq"], "fallbacks": ["g"]},
            },
            "group 'h': field 'fallbacks[0]': groups fall back on each other in a cycle: "
            "g -> h -> g",
        ),
        (
            {
                "g": {"members": [LLAMA], "fallbacks": ["h"]},
                "h": {"members": [GROQ], "context_window_fallbacks": ["openai/gpt-4.1", "h"]},
            },
            "group 'h': field 'context_window_fallbacks[1]': groups fall back on each other in "
            "a cycle: h -> h",
        ),
        ({"g": ["together/llama-3"]}, "group 'g': must be an object"),
        (["g"], "field 'groups': must be an object"),
    ],
)
def test_a_bad_group_is_an_error_naming_the_file_and_field(
    tmp_path: Path, groups: Any, error: str
) -> None:
    path = provider_file(tmp_path, "http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1", groups)
    with pytest.raises(ConfigError) as info:
        OpenAICompatible.load_from_json_file(path)
    assert str(path) in info.value.message
    assert error in info.value.message
    # The setting at fault, for tools that point at it: the field the message names.
    named = re.search(r"field '([^']+)'", error)
    assert info.value.field == (named.group(1) if named else None)


def test_a_group_may_fall_back_on_another_group(tmp_path: Path) -> None:
    groups = {
        "big": {"members": ["openai/gpt-4.1"]},
        "small": {"members": ["together/llama-3"], "fallbacks": ["big"]},
    }
    path = provider_file(tmp_path, "http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1", groups)
    models = OpenAICompatible.load_from_json_file(path)
    assert models.groups["small"].fallbacks[0].llm is models.groups["big"]
