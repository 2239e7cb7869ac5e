"""provider.json: SimpleLLMFunc's files load unchanged, the additions work, and every mistake is
one ConfigError that says where it is (file, provider, model entry, field)."""

from __future__ import annotations

import copy
import json
import traceback
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from llmplug import (
    APIKeyPool,
    Call,
    ConfigError,
    HTTPRequest,
    InternalServerError,
    KeyLease,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    Registry,
    StreamParser,
    hookimpl,
)
from llmplug._plugins import openai_chat
from llmplug.testing import Error, LLMTestServer

Models = dict[str, dict[str, OpenAICompatible]]
Loaded = list[Mapping[str, Mapping[str, LLMInterface]]]

# A provider.json exactly as SimpleLLMFunc documents it.
SIMPLELLMFUNC_FILE = """{
  "volc_engine": [
    {
      "model_name": "deepseek-v3-250324",
      "api_keys": ["sk-volc-1", "sk-volc-2"],
      "base_url": "https://ark.cn-beijing.volces.com/api/v3/",
      "max_retries": 3,
      "retry_delay": 0.5,
      "rate_limit_capacity": 20,
      "rate_limit_refill_rate": 3.0,
      "context_window": 64000,
      "api_params": {"temperature": 0.3, "max_tokens": 512}
    },
    {
      "model_name": "doubao-pro",
      "api_keys": ["sk-volc-1", "sk-volc-2"],
      "base_url": "https://ark.cn-beijing.volces.com/api/v3"
    }
  ],
  "openrouter": [
    {"model_name": "openai/gpt-4o", "api_keys": ["sk-or-1"], "base_url": "https://openrouter.ai/api/v1"}
  ]
}
"""


def good_entry(name: str = "model-a", **fields: Any) -> dict[str, Any]:
    return {"model_name": name, "api_keys": ["sk-1"], "base_url": "https://x.test/v1", **fields}


@pytest.fixture
async def loaded() -> AsyncIterator[Loaded]:
    """Everything a test loads goes here and is closed after it."""
    out: Loaded = []
    yield out
    for models in out:
        for llm in (m for by_model in models.values() for m in by_model.values()):
            await llm.aclose()


def load(tmp_path: Path, data: Any, loaded: Loaded) -> Models:
    path = tmp_path / "provider.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    models = OpenAICompatible.load_from_json_file(path)
    loaded.append(models)
    return models


def the_error(tmp_path: Path, content: Any, *, file: str = "provider.json") -> str:
    """Load ``content`` (JSON text or data) and return the message of the one ConfigError."""
    path = tmp_path / file
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ConfigError) as info:
        OpenAICompatible.load_from_json_file(path)
    shown = "".join(traceback.format_exception(info.value))
    assert shown.count("Traceback") == 1, shown  # one error, not a chain of them
    assert str(path) in str(info.value)
    return str(info.value)


# -- loading --------------------------------------------------------------------------------------


async def test_a_simplellmfunc_file_loads_unchanged_with_every_field_applied(
    tmp_path: Path, loaded: Loaded
) -> None:
    models = load(tmp_path, SIMPLELLMFUNC_FILE, loaded)
    assert {p: list(m) for p, m in models.items()} == {
        "volc_engine": ["deepseek-v3-250324", "doubao-pro"],
        "openrouter": ["openai/gpt-4o"],
    }
    llm = models["volc_engine"]["deepseek-v3-250324"]
    assert type(llm) is OpenAICompatible
    assert (llm.provider_id, llm.model_name) == ("volc_engine", "deepseek-v3-250324")
    assert llm.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert (llm.max_retries, llm.retry_delay, llm.context_window) == (3, 0.5, 64000)
    status = llm.get_rate_limit_status()
    assert (status["capacity"], status["refill_rate"], status["available"]) == (20, 3.0, 20)
    assert llm.api_params == {"temperature": 0.3, "max_tokens": 512}
    assert (llm.wire, llm.key_pool.strategy, len(llm.key_pool)) == ("openai-chat", "round_robin", 2)
    assert llm.headers == {}

    # SimpleLLMFunc's defaults for the optional fields.
    plain = models["volc_engine"]["doubao-pro"]
    assert (plain.max_retries, plain.retry_delay, plain.context_window) == (5, 1.0, 200_000)
    status = plain.get_rate_limit_status()
    assert (status["capacity"], status["refill_rate"]) == (10, 1.0)
    assert plain.api_params == {}


async def test_the_optional_additions_are_applied(tmp_path: Path, loaded: Loaded) -> None:
    entry = good_entry(
        wire="openai-responses", key_strategy="least_loaded", headers={"X-Title": "my app"}
    )
    llm = load(tmp_path, {"acme": [entry]}, loaded)["acme"]["model-a"]
    assert (llm.wire, llm.key_pool.strategy) == ("openai-responses", "least_loaded")
    assert llm.headers == {"X-Title": "my app"}


async def test_load_from_dict_and_a_subclass_keep_their_type(loaded: Loaded) -> None:
    class MyLLM(OpenAICompatible):
        pass

    models = MyLLM.load_from_dict({"acme": [good_entry()], "empty": []})
    assert type(models["acme"]["model-a"]) is MyLLM
    assert models["empty"] == {}
    loaded.append(models)
    # The class picks the default wire format; a file's "wire" wins over it.
    data = {"acme": [good_entry(), good_entry("model-b", wire="openai-chat")]}
    responses = OpenAIResponsesCompatible.load_from_dict(data)
    loaded.append(responses)
    assert [m.wire for m in responses["acme"].values()] == ["openai-responses", "openai-chat"]
    with pytest.raises(ConfigError, match=r"^mine.json: provider 'acme', model entry 0"):
        LLMInterface.load_from_dict({"acme": [{"model_name": 1}]}, source="mine.json")


async def test_a_loaded_interface_calls_with_the_files_key_and_api_params(
    tmp_path: Path, loaded: Loaded, server: LLMTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMPLUG_TEST_KEY", "sk-from-env")
    monkeypatch.setenv("LLMPLUG_TEST_URL", server.base_url)
    monkeypatch.setenv("LLMPLUG_TEST_APP", "demo")
    entry = {
        "model_name": "gpt-test",
        "api_keys": ["${LLMPLUG_TEST_KEY}"],
        "base_url": "${LLMPLUG_TEST_URL}",
        "headers": {"X-Title": "app ${LLMPLUG_TEST_APP}!"},
        "api_params": {
            "temperature": 0.3,
            "max_tokens": 64,
            "extra": {"order": ["${LLMPLUG_TEST_APP}", "plain"], "n": 1},
        },
    }
    llm = load(tmp_path, {"acme": [entry]}, loaded)["acme"]["gpt-test"]
    assert (await llm.chat("hello")).text == "echo: hello"
    assert (await llm.chat("again", temperature=0.9, top_p=0.5)).text == "echo: again"

    first, second = server.requests
    assert first.api_key == second.api_key == "sk-from-env"
    assert first.headers["x-title"] == "app demo!"
    assert first.json == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hello"}],
        "temperature": 0.3,
        "max_tokens": 64,
        "extra": {"order": ["demo", "plain"], "n": 1},
    }
    assert (second.json["temperature"], second.json["top_p"]) == (0.9, 0.5)  # call kwargs win
    assert second.json["max_tokens"] == 64
    assert llm.api_params["temperature"] == 0.3  # the call did not change the interface


async def test_max_retries_and_retry_delay_from_the_file_drive_retries(
    tmp_path: Path, loaded: Loaded, server: LLMTestServer
) -> None:
    entry = good_entry(base_url=server.base_url, max_retries=2, retry_delay=0.001)
    llm = load(tmp_path, {"acme": [entry]}, loaded)["acme"]["model-a"]
    server.push(*[Error(status=500)] * 3)
    with pytest.raises(InternalServerError):
        await llm.chat("hi")
    assert len(server.requests) == 3  # the first try and max_retries=2 more


async def test_models_with_the_same_keys_share_a_pool(
    tmp_path: Path, loaded: Loaded, server: LLMTestServer
) -> None:
    keys = {"api_keys": ["sk-a", "sk-b"], "base_url": server.base_url}
    data = {
        "acme": [
            {"model_name": "m1", **keys},
            {"model_name": "m2", **keys},
            {"model_name": "m3", **keys, "api_keys": ["sk-c"]},
            {"model_name": "m4", **keys, "key_strategy": "least_loaded"},
        ],
        "other": [{"model_name": "m1", **keys}],
    }
    models = load(tmp_path, data, loaded)
    acme, other = models["acme"], models["other"]
    assert acme["m1"].key_pool is acme["m2"].key_pool
    pools = {id(acme[m].key_pool) for m in ("m1", "m3", "m4")} | {id(other["m1"].key_pool)}
    assert len(pools) == 4

    for llm in (acme["m1"], acme["m2"], acme["m1"], other["m1"], acme["m3"]):
        await llm.chat("hi")
    # m1 and m2 take turns on one pool; the other provider starts its own rotation.
    assert [r.api_key for r in server.requests] == ["sk-a", "sk-b", "sk-a", "sk-a", "sk-c"]
    assert [r.model for r in server.requests] == ["m1", "m2", "m1", "m1", "m3"]


# -- mistakes -------------------------------------------------------------------------------------


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    message = the_error(tmp_path, None, file="nope.json")
    assert "cannot read" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"acme": [', "not valid JSON"),
        ("", "not valid JSON"),
        ('[{"model_name": "m"}]', "top level must be an object"),
        ('"just a string"', "top level must be an object"),
        ('{"acme": {"model_name": "m"}}', "provider 'acme': must be a list"),
    ],
    ids=["truncated", "empty", "list", "string", "provider-not-a-list"],
)
def test_a_malformed_file_is_one_error_naming_it(
    tmp_path: Path, content: str, expected: str
) -> None:
    assert expected in the_error(tmp_path, content)


@pytest.mark.parametrize(
    ("change", "field", "detail"),
    [
        ({"base_url": None}, "base_url", "missing"),
        ({"api_keys": None}, "api_keys", "missing"),
        ({"max_retries": "3"}, "max_retries", "int"),
        ({"max_retries": True}, "max_retries", "int"),
        ({"api_keys": "sk-1"}, "api_keys", "array"),
        ({"api_params": [1, 2]}, "api_params", "object"),
        ({"headers": {"X-Title": 1}}, "headers", "str"),
        ({"max_retry": 3}, "max_retry", "unknown"),
        ({"max_retries": -1}, "max_retries", "-1"),
        ({"retry_delay": -1}, "retry_delay", "-1"),
        ({"context_window": 0}, "context_window", "positive"),
        ({"rate_limit_capacity": 0}, "rate_limit_capacity", "> 0"),
        ({"base_url": "ftp://x.test"}, "base_url", "ftp://x.test"),
        ({"api_keys": []}, "api_keys", "at least one"),
        ({"api_keys": ["sk-1", ""]}, "api_keys", "non-empty"),
        ({"api_keys": ["${LLMPLUG_TEST_UNSET}"]}, "api_keys[0]", "${LLMPLUG_TEST_UNSET}"),
        (
            {"api_params": {"extra": {"x": "${LLMPLUG_TEST_UNSET}"}}},
            "api_params.extra.x",
            "not set",
        ),
    ],
    ids=[
        "missing-base_url",
        "missing-api_keys",
        "str-for-int",
        "bool-for-int",
        "str-for-list",
        "list-for-object",
        "int-header",
        "unknown-field",
        "max_retries-negative",
        "retry_delay-negative",
        "context_window-zero",
        "capacity-zero",
        "ftp-base_url",
        "no-keys",
        "empty-key",
        "unset-env-in-key",
        "unset-env-nested",
    ],
)
def test_a_bad_model_entry_is_one_error_naming_provider_entry_and_field(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    field: str,
    detail: str,
) -> None:
    monkeypatch.delenv("LLMPLUG_TEST_UNSET", raising=False)
    bad = good_entry("model-b")
    for name, value in change.items():
        if value is None:
            del bad[name]
        else:
            bad[name] = value
    data = {"good": [good_entry()], "acme": [good_entry(), bad]}
    message = the_error(tmp_path, data)
    assert "provider 'acme', model entry 1 (model-b)" in message
    assert f"field '{field}" in message
    assert detail in message
    assert "sk-1" not in message  # a key never shows in an error


def test_a_duplicate_model_name_and_a_non_object_entry_are_named(tmp_path: Path) -> None:
    message = the_error(tmp_path, {"acme": [good_entry(), good_entry()]})
    assert "provider 'acme', model entry 1 (model-a): field 'model_name'" in message
    assert "twice" in message
    message = the_error(tmp_path, {"acme": [good_entry(), "model-b"]})
    assert "provider 'acme', model entry 1" in message


def test_loading_does_not_change_the_data_it_was_given() -> None:
    data = {"acme": [good_entry(api_params={"nested": {"a": [1]}})]}
    before = copy.deepcopy(data)
    OpenAICompatible.load_from_dict(data)
    assert data == before


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [("wire", "openai-chatt", "wire format"), ("key_strategy", "least-loaded", "key strategy")],
)
def test_a_wire_or_key_strategy_no_plugin_provides_is_named_at_load(
    tmp_path: Path, field: str, value: str, what: str
) -> None:
    message = the_error(tmp_path, {"acme": [good_entry(), good_entry("model-b", **{field: value})]})
    assert f"provider 'acme', model entry 1 (model-b): field '{field}'" in message
    assert f"no plugin provides the {what} {value!r}" in message


class MyNames:
    """A third-party plugin: the wire "my-chat" (OpenAI Chat under another name) and the key
    strategy "last"."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        return openai_chat.build_request("openai-chat", call, key) if wire == "my-chat" else None

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> StreamParser | None:
        return openai_chat.parse_stream("openai-chat", call) if wire == "my-chat" else None

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        return pool.lease(len(pool) - 1) if strategy == "last" else None


async def test_a_wire_and_a_key_strategy_from_a_plugin_load_with_its_registry(
    tmp_path: Path, loaded: Loaded, server: LLMTestServer
) -> None:
    entry = good_entry(
        base_url=server.base_url, api_keys=["sk-1", "sk-2"], wire="my-chat", key_strategy="last"
    )
    path = tmp_path / "provider.json"
    path.write_text(json.dumps({"acme": [entry]}))
    with pytest.raises(ConfigError, match="field 'key_strategy'"):
        OpenAICompatible.load_from_json_file(path)  # the default plugins do not know them
    models = OpenAICompatible.load_from_json_file(path, registry=Registry(plugins=[MyNames()]))
    loaded.append(models)
    assert (await models["acme"]["model-a"].chat("hi")).text == "echo: hi"
    assert server.requests[0].api_key == "sk-2"
