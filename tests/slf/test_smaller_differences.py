"""The rows of docs/migrating-from-simplellmfunc.md that were false, each as SimpleLLMFunc code
run with ``llmplug.slf`` (and llmplug's own behaviour where the guide states it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field

import llmplug
from llmplug import ConfigError, LLMInterface
from llmplug.slf import OpenAICompatible, app_log, llm_chat, llm_function, log_context, tool
from llmplug.testing import LLMTestServer, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]


def test_missing_provider_file_is_both_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(FileNotFoundError) as caught:
        OpenAICompatible.load_from_json_file(str(missing))
    assert isinstance(caught.value, ConfigError)
    assert caught.value.filename == str(missing)
    with pytest.raises(ConfigError):
        llmplug.OpenAICompatible.load_from_json_file(str(missing))


class Order(BaseModel):
    item: str = Field(description="what to buy")
    quantity: int = Field(ge=1)


async def test_pydantic_model_tool_parameter(server: LLMTestServer, make_llm: MakeLLM) -> None:
    got: list[Any] = []

    @tool(name="place_order", description="Place an order")
    async def place_order(order: Order) -> str:
        got.append(order)
        return f"ordered {order.quantity} {order.item}"

    @llm_chat(llm_interface=make_llm(), toolkit=[place_order])
    async def agent(message: str, history: Any = None) -> None:
        """You shop."""

    server.push(
        Reply(tool_calls=[ToolCallReply("place_order", {"order": {"item": "tea", "quantity": 2}})]),
        Reply(tool_calls=[ToolCallReply("place_order", {"order": {"item": "tea", "quantity": 0}})]),
        Reply(text="Done."),
    )
    async for _ in agent("buy tea"):
        pass
    assert got == [Order(item="tea", quantity=2)]  # a validated instance, not a dict
    sent = server.requests[0].json["tools"][0]["function"]["parameters"]
    assert sent["properties"]["order"]["properties"]["item"]["description"] == "what to buy"
    tool_messages = [m for m in server.requests[2].json["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"] == '"ordered 2 tea"'  # JSON, as SimpleLLMFunc sends it
    assert "quantity" in tool_messages[1]["content"]  # pydantic's error goes back to the model


async def test_local_class_with_future_annotations(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    class Verdict(BaseModel):
        ok: bool

    @llm_function(llm_interface=make_llm())
    async def judge(text: str) -> Verdict:
        """Judge the text."""

    server.push(Reply(text='{"ok": true}'))
    assert await judge("fine") == Verdict(ok=True)


async def test_templates_render_as_simplellmfunc(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_function(
        llm_interface=make_llm(),
        system_prompt_template="Task: {function_description}\n"
        "Params:\n{parameters_description}\nReturns: {return_type_description}",
    )
    async def count(text: str, limit: int, tags: list[str]) -> int:
        """Count words."""

    server.push(Reply(text='{"result": 2}'))
    assert await count("a b", 3, ["x"]) == 2
    system = server.requests[0].json["messages"][0]["content"]
    assert system == (
        "Task: Count words.\nParams:\n  - text: <class 'str'>\n  - limit: <class 'int'>\n"
        "  - tags: List[<class 'str'>]\nReturns: <class 'int'>"
    )


async def test_prompt_injection_builder_as_simplellmfunc(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    seen: list[dict[str, Any]] = []

    def builder(context: dict[str, Any]) -> str:
        seen.append(context)
        return "Always show your work."

    def broken(context: dict[str, Any]) -> str:
        raise RuntimeError("no")

    @tool(name="calc", description="Calculate", prompt_injection_builder=builder)
    async def calc(expression: str) -> str:
        return "4"

    @tool(name="other", description="Other", prompt_injection_builder=broken)
    async def other(x: str) -> str:
        return x

    @llm_chat(llm_interface=make_llm(), toolkit=[calc, other])
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    server.push(Reply(text="ok"))
    async for _ in agent("hi"):
        pass
    assert seen == [{}]  # SimpleLLMFunc passes an empty context; the broken one is dropped
    assert "Always show your work." in server.requests[0].json["messages"][0]["content"]


def test_logging_names_import_and_run() -> None:
    with log_context(trace_id="task_456", function_name="analyze_text"):
        app_log("Analysis started")
