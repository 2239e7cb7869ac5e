"""``llmplug.slf.hooks`` used directly, as SimpleLLMFunc's own hook tests use it: the event
classes' keyword construction, the stream items, the emitters outside a stream."""

from __future__ import annotations

from datetime import UTC, datetime

from llmplug.slf.hooks import (
    CustomEvent,
    EventOrigin,
    EventYield,
    NoOpEventEmitter,
    ReActEventType,
    ReactStartEvent,
    ResponseYield,
    ToolEventEmitter,
    is_event_yield,
    is_response_yield,
)
from llmplug.slf.hooks.events import ToolCallResult, ToolCallsBatchEndEvent
from llmplug.slf.type.message import MessageList


def start_event(**extra: object) -> ReactStartEvent:
    return ReactStartEvent(
        event_type=ReActEventType.REACT_START,
        timestamp=datetime.now(UTC),
        trace_id="t",
        func_name="f",
        iteration=0,
        user_task_prompt="hi",
        initial_messages=[],
        available_tools=None,
        **extra,  # type: ignore[arg-type]
    )


def test_stream_items_construct_as_in_simplellmfunc() -> None:
    messages: MessageList = [{"role": "user", "content": "hi"}]
    r = ResponseYield(type="response", response="Hello", messages=messages)
    assert (r.type, r.response, r.messages) == ("response", "Hello", messages)
    assert tuple(r) == ("Hello", messages)
    e = EventYield(type="event", event=start_event(extra={"k": "v"}))
    assert e.origin.session_id == "legacy" and e.event.extra == {"k": "v"}
    origin = EventOrigin(session_id="s", agent_call_id="a", event_seq=1)
    assert EventYield(event=start_event(), origin=origin).origin.as_dict()["event_seq"] == 1
    assert is_response_yield(r) and not is_response_yield(e)
    assert is_event_yield(e) and not is_event_yield(r)
    assert ReActEventType.REACT_START.value == "react_start"
    assert str.__eq__(ReActEventType.REACT_START, "react_start")  # a str, as in SimpleLLMFunc


def test_batch_end_event_holds_results() -> None:
    result: ToolCallResult = {
        "tool_name": "t",
        "tool_call_id": "c",
        "result": "ok",
        "execution_time": 0.5,
        "success": True,
    }
    event = ToolCallsBatchEndEvent(
        event_type=ReActEventType.TOOL_CALLS_BATCH_END,
        timestamp=datetime.now(UTC),
        trace_id="t",
        func_name="f",
        iteration=1,
        tool_results=[result],
        batch_size=1,
        total_execution_time=0.5,
        success_count=1,
        error_count=0,
    )
    assert event.tool_results[0]["tool_name"] == "t"


async def test_emitters_outside_a_stream() -> None:
    emitter = ToolEventEmitter(_trace_id="t", _func_name="f", _iteration=1)
    await emitter.emit("progress", {"percent": 50})
    await emitter.emit_batch([("a", 1), ("b", 2)])
    assert emitter.has_events()
    events = await emitter.get_events()
    assert [y.event.event_name for y in events if isinstance(y.event, CustomEvent)] == [
        "progress",
        "a",
        "b",
    ]
    assert not emitter.has_events()
    noop = NoOpEventEmitter()
    await noop.emit("x")
    assert await noop.get_events() == [] and not noop.has_events()


def test_flush_all_observations_is_kept() -> None:
    from llmplug.slf.observability import flush_all_observations

    flush_all_observations()  # a program's last line, as in SimpleLLMFunc's examples
