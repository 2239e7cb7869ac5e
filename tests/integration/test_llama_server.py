"""Every wire llmplug ships against llama.cpp's ``llama-server`` (a peer nobody here wrote) doing
real inference with a tiny random-weight model (see llama_model.py).

Random weights write random text, so the tests assert protocol facts only: text arrives and
matches what streamed, the finish reason, token counts that add up, and a tool call with the
tool's name and JSON arguments. The model is built to call a tool whenever one is offered and no
tool result is in the prompt yet, and to answer in text after that, so tool loops end.

The server's quirks these tests meet (see ../shared/reference/llama-server.md): an Anthropic
stream sometimes has no ``message_start`` and never a ``ping``; its ``tool_use`` block start has
no ``input``; a Responses stream sometimes repeats ``response.created``; a bad key gets an
OpenAI-shaped 401 on every route. Streams are run several times so the occasional quirks come
up now and then; the server's start, the model and all these tests take a few seconds.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmplug import (
    AuthenticationError,
    ChatDone,
    Completion,
    Done,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    StreamEvent,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolCallEvent,
    ToolResultEvent,
    llm_chat,
    tool,
)

from .conftest import MakeLiteLLM

WIRES = ["openai-chat", "openai-responses", "anthropic-messages"]
STREAM_RUNS = 5  # the Anthropic stream misses message_start in about 1 of 5

# An integer argument keeps the grammar-constrained call short: a random model writing a string
# argument rambles until max_tokens.
LUCKY = Tool(
    name="lucky_number",
    description="The lucky number of a digit.",
    parameters={
        "type": "object",
        "properties": {"digit": {"type": "integer"}},
        "required": ["digit"],
    },
)


def make_wire(make: MakeLiteLLM, wire: str, **kw: Any) -> LLMInterface:
    if wire == "openai-chat":
        llm: LLMInterface = make(interface=OpenAICompatible, **kw)
    elif wire == "openai-responses":
        llm = make(interface=OpenAIResponsesCompatible, **kw)
    else:
        # The Anthropic wire is a distribution of its own (plugins/llmplug-anthropic), installed
        # by scripts/_setup.sh like every plugins/*/pyproject.toml.
        llm = make(interface=LLMInterface, wire=wire, **kw)
    return llm


def assert_usage(c: Completion, max_tokens: int | None = None) -> None:
    u = c.usage
    assert u is not None
    assert u.input_tokens > 0 and u.output_tokens > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    if max_tokens is not None:
        assert u.output_tokens <= max_tokens


def assert_lucky_call(c: Completion) -> None:
    assert c.finish_reason == "tool_calls", c
    assert not c.text, c  # the biased model goes straight to the call
    [call] = c.tool_calls
    assert call.id and call.name == "lucky_number"
    args = call.parsed_arguments()
    assert list(args) == ["digit"] and isinstance(args["digit"], int), call.arguments


async def collect(stream: Any) -> tuple[list[StreamEvent], Completion]:
    events: list[StreamEvent] = [e async for e in stream]
    assert sum(isinstance(e, Done) for e in events) == 1 and isinstance(events[-1], Done)
    return events, events[-1].completion


@pytest.mark.parametrize("wire", WIRES)
async def test_plain_call(make_llama: MakeLiteLLM, wire: str) -> None:
    llm = make_wire(make_llama, wire)
    c = await llm.chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}],
        max_tokens=24,
    )
    assert c.text  # random, but never empty: see llama_model.py
    assert c.finish_reason in ("stop", "length")
    assert not c.tool_calls
    assert_usage(c, 24)
    if c.finish_reason == "length":
        assert c.usage is not None and c.usage.output_tokens == 24


@pytest.mark.parametrize("run", range(STREAM_RUNS))
@pytest.mark.parametrize("wire", WIRES)
async def test_stream(make_llama: MakeLiteLLM, wire: str, run: int) -> None:
    llm = make_wire(make_llama, wire)
    events, c = await collect(llm.chat_stream(f"Hello number {run}!", max_tokens=24))
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text and text == c.text
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert c.finish_reason in ("stop", "length")
    assert_usage(c, 24)


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_call(make_llama: MakeLiteLLM, wire: str) -> None:
    llm = make_wire(make_llama, wire)
    c = await llm.chat("What is the lucky number of 3?", tools=[LUCKY], max_tokens=128)
    assert_lucky_call(c)
    assert_usage(c, 128)


@pytest.mark.parametrize("wire", WIRES)
async def test_tool_call_streams(make_llama: MakeLiteLLM, wire: str) -> None:
    llm = make_wire(make_llama, wire)
    events, c = await collect(
        llm.chat_stream("What is the lucky number of 3?", tools=[LUCKY], max_tokens=128)
    )
    assert_lucky_call(c)
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert deltas and "".join(d.arguments for d in deltas) == c.tool_calls[0].arguments


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("wire", WIRES)
async def test_llm_chat_runs_the_tool_then_answers(
    make_llama: MakeLiteLLM, wire: str, stream: bool
) -> None:
    llm = make_wire(make_llama, wire)
    digits: list[int] = []

    @tool
    def lucky_number(digit: int) -> int:
        """The lucky number of a digit.

        Args:
            digit: any digit
        """
        digits.append(digit)
        return 7

    @llm_chat(llm_interface=llm, toolkit=[lucky_number], stream=stream, max_tokens=128)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """Use the tool."""

    events = [e async for e in agent.events("What is the lucky number of 3?")]
    done = events[-1]
    assert isinstance(done, ChatDone)
    [asked] = [e for e in events if isinstance(e, ToolCallEvent)]
    [answered] = [e for e in events if isinstance(e, ToolResultEvent)]
    assert asked.call.name == "lucky_number" and len(digits) == 1
    assert answered.result.content == "7"
    assert done.reply  # the second turn saw the tool result and wrote text
    roles = [m["role"] for m in done.history]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert done.history[2]["tool_calls"][0]["function"]["name"] == "lucky_number"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0


@pytest.mark.parametrize("wire", WIRES)
async def test_a_bad_key_is_an_authentication_error(make_llama: MakeLiteLLM, wire: str) -> None:
    llm = make_wire(make_llama, wire, key="sk-wrong")
    with pytest.raises(AuthenticationError) as info:
        await llm.chat("Hello!", max_tokens=4)
    assert info.value.status == 401
    assert "sk-wrong" not in str(info.value)
