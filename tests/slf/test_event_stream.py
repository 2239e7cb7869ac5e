"""SimpleLLMFunc 0.8.4's event stream and 0.7.8's pairs, from ``llmplug.slf``, over real HTTP:
the code is written as SimpleLLMFunc's users write it, with only the package name changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmplug import LLMInterface, OpenAIResponsesCompatible
from llmplug.slf import llm_chat, llm_function, tool
from llmplug.slf.hooks import (
    CustomEvent,
    EventYield,
    ReactEndEvent,
    ResponseYield,
    ToolCallEndEvent,
    ToolEventEmitter,
    is_event_yield,
    is_response_yield,
    responses_only,
)
from llmplug.slf.hooks.events import LLMCallEndEvent, LLMChunkArriveEvent
from llmplug.slf.hooks.stream import ReactOutput
from llmplug.testing import LLMTestServer, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]


@tool(name="calculator", description="Evaluate an arithmetic expression")
async def calculator(expression: str, event_emitter: ToolEventEmitter | None = None) -> str:
    """Args:
    expression: e.g. 2+2
    """
    if event_emitter:
        await event_emitter.emit("progress", {"percent": 50})
    return "4"


USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def script(server: LLMTestServer) -> None:
    server.push(
        Reply(tool_calls=[ToolCallReply(name="calculator", arguments={"expression": "2+2"})]),
        Reply(
            text="It is 4.",
            chunks=["It ", "is ", "4."],
            usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
        ),
    )


def kinds(outputs: list[Any]) -> list[str]:
    return [o.event.event_type.value if is_event_yield(o) else "response" for o in outputs]


async def test_event_order_non_streaming(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[calculator], enable_event=True)
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    script(server)
    out: list[ReactOutput] = [o async for o in agent("2+2?", [])]
    assert kinds(out) == [
        "react_start",
        "llm_call_start",
        "response",
        "llm_call_end",
        "tool_calls_batch_start",
        "tool_call_start",
        "custom_event",
        "tool_call_end",
        "tool_calls_batch_end",
        "react_iteration_end",
        "react_iteration_start",
        "llm_call_start",
        "response",
        "llm_call_end",
        "react_end",
    ]
    custom = next(
        o.event for o in out if isinstance(o, EventYield) and isinstance(o.event, CustomEvent)
    )
    assert (custom.event_name, custom.data, custom.tool_name) == (
        "progress",
        {"percent": 50},
        "calculator",
    )
    end = next(
        o.event for o in out if isinstance(o, EventYield) and isinstance(o.event, ToolCallEndEvent)
    )
    assert (end.tool_name, end.arguments, end.result, end.success) == (
        "calculator",
        {"expression": "2+2"},
        "4",  # SimpleLLMFunc gives the value the tool returned (a str here)
        True,
    )
    final = out[-1]
    assert isinstance(final, EventYield) and isinstance(final.event, ReactEndEvent)
    assert final.event.final_response == "It is 4."
    assert [m["role"] for m in final.event.final_messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert (final.event.total_llm_calls, final.event.total_tool_calls) == (2, 1)
    # the raw response has the OpenAI SDK's completion shape
    last_response = [o for o in out if is_response_yield(o)][-1]
    assert last_response.response.choices[0].message.content == "It is 4."
    calls_end = [
        o.event for o in out if isinstance(o, EventYield) and isinstance(o.event, LLMCallEndEvent)
    ]
    assert calls_end[-1].usage.prompt_tokens == 12
    assert calls_end[-1].usage.total_tokens == 15


async def test_streamed_chunks_have_chunk_shape(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), stream=True, enable_event=True)
    async def agent(message: str, history: Any = None) -> None:
        """You talk."""

    server.push(Reply(text="Hello there", chunks=["Hello", " there"]))
    out = [o async for o in agent("hi")]
    # as OpenAI streams: a role chunk, the content, the finish, and usage with no choices
    pieces = [
        o.response.choices[0].delta.content
        for o in out
        if is_response_yield(o) and o.response.choices
    ]
    assert "".join(p or "" for p in pieces) == "Hello there"
    chunks = [
        o.event
        for o in out
        if isinstance(o, EventYield) and isinstance(o.event, LLMChunkArriveEvent)
    ]
    assert chunks[-1].accumulated_content == "Hello there"
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))


async def test_pairs_unpack_as_in_0_7_8(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[calculator], stream=True)
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    script(server)
    text = ""
    history: list[dict[str, Any]] = []
    async for response, history in agent("2+2?", []):  # noqa: B007 - SimpleLLMFunc idiom
        text += response
    assert text == "It is 4."
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool", "assistant"]


async def test_pairs_are_0_8_4_response_yields(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), return_mode="raw")
    async def agent(message: str, history: Any = None) -> None:
        """You talk."""

    server.push(Reply(text="Hi"))
    out = [o async for o in agent("hi")]
    assert all(isinstance(o, ResponseYield) and is_response_yield(o) for o in out)
    assert out[0].response.choices[0].message.content == "Hi"
    response, messages = out[0]
    assert response is out[0].response and messages is out[0].messages
    server.push(Reply(text="Yo"))
    pairs = [p async for p in responses_only(agent("again"))]
    assert pairs[0][0].choices[0].message.content == "Yo"


async def test_llm_function_stream_ends_with_the_value(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm())
    async def double(n: int) -> int:
        """Double n."""

    server.push(Reply(text='{"result": 8}'))
    out = [o async for o in double.stream(4)]
    assert kinds(out)[0] == "react_start" and kinds(out)[-1] == "response"
    assert isinstance(out[-1], ResponseYield) and out[-1].response == 8
    server.push(Reply(text='{"result": 6}'))
    assert await double(3) == 6


async def test_llm_function_enable_event_as_in_0_7_8(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm(), toolkit=[calculator], enable_event=True)
    async def task(task: str) -> str:
        """Do the task."""

    script(server)
    out = [o async for o in task(task="2+2")]
    assert "custom_event" in kinds(out)
    assert isinstance(out[-1], ResponseYield) and out[-1].response == "It is 4."


async def test_max_tool_calls_as_simplellmfunc(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[calculator], max_tool_calls=1)
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    call = ToolCallReply(name="calculator", arguments={"expression": "2+2"})
    server.push(Reply(tool_calls=[call]), Reply(tool_calls=[call]), Reply(text="4, I think."))
    replies = [r async for r, _ in agent("2+2?")]
    assert replies[-2:] == ["4, I think.", ""]
    assert "tools" not in server.requests[2].json  # the last turn is offered no tools
    tool_messages = [m for m in server.requests[2].json["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1  # the call past the cap never ran


async def test_raw_on_the_responses_wire_has_the_completion_shape(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(
        llm_interface=make_llm(interface=OpenAIResponsesCompatible),
        toolkit=[calculator],
        return_mode="raw",
    )
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    script(server)
    out = [r async for r, _ in agent("2+2?")]
    first, last = out[0], out[-1]
    assert first.choices[0].message.tool_calls[0].function.name == "calculator"
    assert last.choices[0].message.content == "It is 4."
    assert last.usage.total_tokens == 15
    assert last.model_dump()["object"] == "chat.completion"


async def test_tool_runs_are_observed(server: LLMTestServer, make_llm: MakeLLM) -> None:
    from tests.core.test_observers import Recorder, registry_with

    rec = Recorder()

    @llm_chat(llm_interface=make_llm(registry=registry_with(rec)), toolkit=[calculator])
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    script(server)
    async for _ in agent("2+2?"):
        pass
    assert [(t.call.name, t.status, t.result) for t in rec.tools] == [("calculator", "ok", '"4"')]


async def test_the_history_given_back_carries_the_next_turn(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm(), toolkit=[calculator])
    async def agent(message: str, history: Any = None) -> None:
        """You calculate."""

    script(server)
    history: list[dict[str, Any]] = []
    async for _, history in agent("2+2?", []):  # noqa: B007 - SimpleLLMFunc idiom
        pass
    server.push(Reply(text="Still 4."))
    async for _, history in agent("And again?", history):  # noqa: B007, B020 - the idiom
        pass
    sent = server.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert [m["role"] for m in history][-2:] == ["user", "assistant"]
