"""The usage SimpleLLMFunc's README teaches, written as its users write it, run over real HTTP
on both wires: only the import differs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from llmplug import (
    DEFAULT_CONTEXT_WINDOW,
    APIKeyPool,
    ChatDone,
    Completion,
    HistoryList,
    ImgPath,
    ImgUrl,
    LLM_Interface,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    ReasoningDelta,
    Text,
    TextDelta,
    ToolLoopError,
    async_llm_chat,
    async_llm_function,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import Fault, LLMTestServer, RecordedRequest, Reply, ToolCallReply

from ._images import PNG, data_url, write

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]


@tool(name="calculator", description="Evaluate an arithmetic expression")
async def calculator(expression: str) -> str:
    """Args:
    expression: e.g. 2+2
    """
    return "4" if expression == "2+2" else "?"


def script_tool_then_answer(server: LLMTestServer, answer: str = "It is 4.") -> None:
    server.push(
        Reply(tool_calls=[ToolCallReply(name="calculator", arguments={"expression": "2+2"})]),
        Reply(text=answer, reasoning="simple", chunks=["It ", "is ", "4."]),
    )


def tool_outputs(req: RecordedRequest) -> list[Any]:
    if "messages" in req.json:
        return [m["content"] for m in req.json["messages"] if m["role"] == "tool"]
    return [i["output"] for i in req.json["input"] if i.get("type") == "function_call_output"]


def roles(history: HistoryList) -> list[str]:
    return [m["role"] for m in history]


# -- @llm_chat: `async for response, updated_history in agent("Hello", []):` --------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_chat_tuple_loop_with_tools(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    @llm_chat(llm_interface=make_llm(interface=wire), toolkit=[calculator])
    async def agent(user_message: str, history: Any = None) -> None:
        """An intelligent assistant that can calculate."""

    script_tool_then_answer(server)
    history: HistoryList = []
    responses = []
    async for response, updated_history in agent("What is 2+2?", history):
        responses.append(response)
        history_seen = updated_history
    # The whole reply, then SimpleLLMFunc's end marker; the tool turn has no text to show.
    assert responses == ["It is 4.", ""]
    assert roles(history_seen) == ["system", "user", "assistant", "tool", "assistant"]
    assert history_seen[3]["content"] == "4"
    assert history_seen[-1] == {"role": "assistant", "content": "It is 4."}

    # The next turn goes on from the history it was given back.
    server.push(Reply(text="Yes."))
    pairs = [pair async for pair in agent("Sure?", history_seen)]
    assert [r for r, _ in pairs] == ["Yes.", ""]
    assert roles(pairs[-1][1]) == [*roles(history_seen), "user", "assistant"]


@pytest.mark.parametrize("wire", WIRES)
async def test_chat_tuple_loop_streamed_with_tools(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    @llm_chat(llm_interface=make_llm(interface=wire), toolkit=[calculator], stream=True)
    async def agent(user_message: str, history: Any = None) -> None:
        """An intelligent assistant that can calculate."""

    script_tool_then_answer(server)
    given: HistoryList = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hey"},
    ]
    pairs = [pair async for pair in agent("What is 2+2?", given)]
    chunks = [response for response, _ in pairs]
    assert chunks == ["It ", "is ", "4.", ""]  # text chunks only: no reasoning, no tool calls
    # While the reply streams, the history holds what came before it (tool results included).
    assert roles(pairs[0][1]) == ["system", "user", "assistant", "user", "assistant", "tool"]
    assert roles(pairs[-1][1]) == [*roles(pairs[0][1]), "assistant"]
    assert pairs[-1][1][-1]["content"] == "It is 4."
    assert given == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
    # Each history is a list of its own: keeping one does not see later changes.
    assert pairs[0][1] is not pairs[1][1]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_return_mode_raw_gives_llmplugs_own_objects(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], stream: bool
) -> None:
    @llm_chat(
        llm_interface=make_llm(interface=wire),
        toolkit=[calculator],
        stream=stream,
        return_mode="raw",
    )
    async def agent(user_message: str, history: Any = None) -> None:
        """Calculator."""

    script_tool_then_answer(server)
    pairs = [pair async for pair in agent("What is 2+2?", [])]
    raw = [response for response, _ in pairs]
    if stream:
        assert [type(r) for r in raw] == [
            ReasoningDelta,
            TextDelta,
            TextDelta,
            TextDelta,
            Completion,
        ]
    else:
        # One Completion per model turn: the tool call, then the answer.
        assert [type(r) for r in raw] == [Completion, Completion]
        assert raw[0].tool_calls[0].name == "calculator"
    assert raw[-1].text == "It is 4."
    assert roles(pairs[-1][1])[-1] == "assistant"


@pytest.mark.parametrize("stream", [False, True])
async def test_events_are_the_typed_option_with_the_same_history(
    server: LLMTestServer, make_llm: MakeLLM, stream: bool
) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[calculator], stream=stream)
    async def agent(user_message: str, history: Any = None) -> None:
        """Calculator."""

    script_tool_then_answer(server)
    pairs = [pair async for pair in agent("What is 2+2?", [])]
    script_tool_then_answer(server)
    events = [e async for e in agent.events("What is 2+2?", [])]
    done = events[-1]
    assert isinstance(done, ChatDone)
    assert done.history == pairs[-1][1]
    assert done.reply == "It is 4."


async def test_stopping_the_tuple_loop_early_closes_the_stream_and_releases_the_key(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()

    @llm_chat(llm_interface=llm, stream=True)
    async def agent(message: str, history: Any = None) -> None:
        """Talk."""

    server.push(Fault(kind="never_ending", seconds=20))
    pairs = agent("talk forever", [])
    async for chunk, _ in pairs:
        if chunk:
            break
    await pairs.aclose()
    await server.client_aborts_reached(1)
    assert llm.key_pool.status()[0]["in_flight"] == 0


# -- @llm_function ------------------------------------------------------------------------------


class ImageReport(msgspec.Struct):
    differences: list[str]
    same_subject: bool


@pytest.mark.parametrize("wire", WIRES)
async def test_typed_function_with_image_parameters(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    @llm_function(llm_interface=make_llm(interface=wire))
    async def analyze_image(
        description: Text,  # Text description
        web_image: ImgUrl,  # Web image URL or data: URL
        local_image: ImgPath,  # Local image path, encoded as a data URL
    ) -> ImageReport:
        """Analyze images based on the description"""

    server.push(Reply(text='{"differences": ["color"], "same_subject": true}'))
    local = write(tmp_path, "reference.png", PNG)
    result = await analyze_image(
        description=Text("Describe the differences between these images"),
        web_image=ImgUrl("https://example.com/image.jpg"),
        local_image=ImgPath(local),
    )
    assert result == ImageReport(differences=["color"], same_subject=True)
    req = server.requests[0]
    assert req.images == [
        ("https://example.com/image.jpg", None),
        (data_url("image/png", PNG), None),
    ]
    assert "Describe the differences between these images" in str(req.json)
    assert "response_format" in req.json or req.json["text"]["format"]["type"] == "json_schema"


@pytest.mark.parametrize("wire", WIRES)
async def test_stacked_tool_on_llm_function(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    llm = make_llm(interface=wire)

    @tool(name="translate", description="Translate text into a language")
    @llm_function(llm_interface=llm)
    async def translate(text: str, language: str) -> str:
        """Translate the text into the language.

        Args:
            text: what to translate
            language: the target language
        """

    @llm_chat(llm_interface=llm, toolkit=[translate])
    async def agent(message: str, history: Any = None) -> None:
        """A travel assistant."""

    server.push(
        Reply(
            tool_calls=[
                ToolCallReply(name="translate", arguments={"text": "hello", "language": "French"})
            ]
        ),
        Reply(text="bonjour"),  # the tool's own LLM call
        Reply(text='In French: "bonjour".'),
    )
    pairs = [pair async for pair in agent("How do I say hello in French?", [])]
    assert pairs[-2][0] == 'In French: "bonjour".'
    first, inner, last = server.requests
    (spec,) = first.json["tools"]
    spec = spec.get("function") or spec
    assert spec["name"] == "translate"
    assert spec["parameters"]["properties"]["language"]["description"] == "the target language"
    assert inner.last_user_text == "text: hello\nlanguage: French"
    assert tool_outputs(last) == ["bonjour"]
    # The tool is still a plain function to call.
    server.push(Reply(text="hola"))
    assert await translate("hello", "Spanish") == "hola"


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_returning_an_image_in_a_chat_loop(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface], tmp_path: Path
) -> None:
    chart_path = write(tmp_path, "generated_chart.png", PNG)

    @tool(name="generate_chart", description="Generate a chart from data")
    async def generate_chart(data: str, chart_type: str = "bar") -> ImgPath:
        """Generate charts based on provided data.

        Args:
            data: CSV format data
            chart_type: Chart type, default is bar chart
        """
        return ImgPath(chart_path)

    @llm_chat(llm_interface=make_llm(interface=wire), toolkit=[generate_chart])
    async def agent(message: str, history: Any = None) -> None:
        """A data analyst."""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="generate_chart", arguments={"data": "a,1\nb,2"})]),
        Reply(text="Bar b is twice bar a."),
    )
    responses = [response async for response, _ in agent("Chart this", [])]
    assert responses == ["Bar b is twice bar a.", ""]
    assert server.requests[1].images == [(data_url("image/png", PNG), None)]


# -- defaults and names -------------------------------------------------------------------------


async def test_max_tool_calls_is_unbounded_by_default_as_in_simplellmfunc(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()

    @llm_function(llm_interface=llm, toolkit=[calculator])
    async def compute(question: str) -> str:
        """Use the calculator."""

    calls = [ToolCallReply(name="calculator", arguments={"expression": "2+2"})] * 10
    server.push(*[Reply(tool_calls=calls)] * 5, Reply(text="4"))
    assert await compute("fifty sums") == "4"

    @llm_function(llm_interface=llm, toolkit=[calculator], max_tool_calls=8)
    async def capped(question: str) -> str:
        """Use the calculator."""

    server.push(Reply(tool_calls=calls))
    with pytest.raises(ToolLoopError, match="max_tool_calls=8"):
        await capped("ten sums")


def test_simplellmfunc_names() -> None:
    assert DEFAULT_CONTEXT_WINDOW == 200_000
    assert async_llm_function is llm_function
    assert async_llm_chat is llm_chat
    llm = OpenAICompatible(
        api_key_pool=APIKeyPool(["sk-1"], provider_id="deepseek-chat"),
        base_url="https://api.deepseek.com/v1",
        model_name="deepseek-chat",
        context_window=None,
    )
    assert isinstance(llm, LLM_Interface)
    assert llm.context_window == DEFAULT_CONTEXT_WINDOW


def test_provider_json_by_simplellmfuncs_keyword(tmp_path: Path) -> None:
    config = tmp_path / "provider.json"
    config.write_text(
        '{"deepseek": [{"model_name": "deepseek-v3.2", "api_keys": ["sk-key-1", "sk-key-2"],'
        ' "base_url": "https://api.deepseek.com/v1", "max_retries": 5, "retry_delay": 1.0,'
        ' "rate_limit_capacity": 10, "rate_limit_refill_rate": 1.0}]}'
    )
    provider = OpenAIResponsesCompatible.load_from_json_file(json_path=str(config))
    llm = provider["deepseek"]["deepseek-v3.2"]
    assert (llm.model_name, len(llm.key_pool), llm.max_retries) == ("deepseek-v3.2", 2, 5)


async def test_concurrent_calls_with_gather(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_function(llm_interface=make_llm())
    async def classify_text(text: str) -> str:
        """Classify the text as positive or negative."""

    server.default = "positive"
    results = await asyncio.gather(*[classify_text(t) for t in ("good", "great", "fine")])
    assert results == ["positive"] * 3
