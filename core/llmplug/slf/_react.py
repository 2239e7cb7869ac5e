"""SimpleLLMFunc's ReAct event stream, from llmplug's typed events: the model call's
``TextDelta`` / ``ReasoningDelta`` / ``ToolCallDelta`` / ``Done`` (or its whole ``Completion``)
and the toolkit's ``ToolResult``s, in 0.8.4's order:

``ReactStart``, then per model turn (``ReactIterationStart`` from the second on)
``LLMCallStart``, per chunk ``LLMChunkArrive`` and a response, ``LLMCallEnd``; when the model
asked for tools ``ToolCallsBatchStart``, a ``ToolCallStart`` per call, the tools' own events
and a ``ToolCallEnd`` (or ``ToolCallError``) per call as each finishes, ``ToolCallsBatchEnd``,
``ReactIterationEnd``; last ``ReactEnd``."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from llmplug._engine._observe import Status, ToolInfo, notify
from llmplug._vocab._types import (
    Completion,
    ContentPart,
    Done,
    Message,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
)

from ._arg_deltas import ArgumentDeltas
from ._raw import ChunkMaker, OpenAIObject, completion_of, usage_of
from .hooks.event_emitter import ToolEventEmitter
from .hooks.events import (
    LLMCallEndEvent,
    LLMCallStartEvent,
    LLMChunkArriveEvent,
    ReactEndEvent,
    ReActEvent,
    ReActEventType,
    ReactIterationEndEvent,
    ReactIterationStartEvent,
    ReactStartEvent,
    ToolCallArgumentsDeltaEvent,
    ToolCallEndEvent,
    ToolCallErrorEvent,
    ToolCallResult,
    ToolCallsBatchEndEvent,
    ToolCallsBatchStartEvent,
    ToolCallStartEvent,
)
from .hooks.stream import EventOrigin, EventYield, ResponseYield

if TYPE_CHECKING:
    from llmplug._decorators._tool import Toolkit, ToolResult
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["react"]

Output = ResponseYield | EventYield


def _now() -> datetime:
    return datetime.now(UTC)


def _dicts(messages: list[Message]) -> list[dict[str, Any]]:
    """The history as SimpleLLMFunc's dicts: an assistant message always has ``content``
    (None with tool calls), a tool call ``id``, ``type``, ``function``, in that order."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = msgspec.to_builtins(m)
        if m.role == "assistant":
            rest = {k: v for k, v in d.items() if k not in ("role", "content", "tool_calls")}
            d = {"role": "assistant", "content": d.get("content")}
            if m.tool_calls:
                d["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": c.type,
                        "function": {"name": c.function.name, "arguments": c.function.arguments},
                    }
                    for c in m.tool_calls
                ]
            d.update(rest)
        elif m.role == "tool":
            d = {"role": "tool", "tool_call_id": m.tool_call_id, "content": d.get("content")}
        out.append(d)
    return out


_NOTHING = object()


def _tool_text(result: ToolResult, value: Any) -> str:
    """What the model reads of a tool's result, as SimpleLLMFunc writes it: the value as
    indented JSON (a str quoted), or the str() of a value JSON cannot hold."""
    if result.is_error or result.images or value is _NOTHING:
        return result.content
    try:
        return json.dumps(value, ensure_ascii=False, indent=2)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False, indent=2)


def _observe_tool(
    llm: LLMInterface | ModelGroup,
    toolkit: Toolkit,
    call: ToolCall,
    result: ToolResult | None,
    text: str | None,
    when: tuple[float, float],
    params: dict[str, Any],
) -> None:
    """``text`` is what the model reads; ``when`` the start's wall and monotonic clocks."""
    trace_id, session_id = params.get("trace_id"), params.get("session_id")
    status: Status = "interrupted" if result is None else "error" if result.is_error else "ok"
    info = ToolInfo(
        call=call,
        status=status,
        started=when[0],
        duration_s=time.monotonic() - when[1],
        result=text,
        error_type=result.error_type if result is not None else None,
        description=toolkit.description(call.name),
        trace_id=None if trace_id is None else str(trace_id),
        session_id=session_id if isinstance(session_id, str) else None,
    )
    notify(llm.registry, "observe_tool", info)


async def _run_tool(
    toolkit: Toolkit, call: ToolCall, injected: dict[str, Any]
) -> tuple[ToolResult, Any]:
    """Run a call and keep the value the tool returned (SimpleLLMFunc's events and tool
    messages show that value; llmplug's result holds only its text): a copy of the tool
    whose function is wrapped, so concurrent calls of one tool keep their own values."""
    tool = toolkit.tools.get(call.name)
    if tool is None:
        return await toolkit.run_one(call, injected), _NOTHING
    kept: list[Any] = []
    inner = tool._fn

    def keep(value: Any) -> Any:
        kept.append(value)
        return value

    if tool.is_async:

        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            return keep(await inner(*args, **kwargs))

        fn: Callable[..., Any] = wrapped_async
    else:

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return keep(inner(*args, **kwargs))

        fn = wrapped
    copied = copy.copy(tool)
    copied._fn = fn
    result = await copied.run(call, injected)
    return result, kept[0] if kept else _NOTHING


def _call_dict(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}


def _arguments(c: ToolCall) -> dict[str, Any]:
    try:
        value = c.parsed_arguments()
    except Exception:  # the tool reports bad arguments; the event shows none
        return {}
    return value if isinstance(value, dict) else {}


def _result_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class _Events:
    """Numbers the events of one call, as SimpleLLMFunc's event bus does."""

    def __init__(self, trace_id: str, func_name: str) -> None:
        self.trace_id = trace_id
        self.func_name = func_name
        self.seq = 0

    def origin(self, call: ToolCall | None = None) -> EventOrigin:
        self.seq += 1
        return EventOrigin(
            session_id=self.trace_id,
            agent_call_id=f"agent_{self.trace_id}",
            event_seq=self.seq,
            tool_name=call.name if call else None,
            tool_call_id=call.id if call else None,
        )

    def __call__(self, event: ReActEvent, call: ToolCall | None = None) -> EventYield:
        return EventYield(event=event, origin=self.origin(call))

    def with_origin(self, event: ReActEvent, tool_name: str, call_id: str) -> EventYield:
        origin = self.origin()
        origin.tool_name, origin.tool_call_id = tool_name or None, call_id
        return EventYield(event=event, origin=origin)

    def base(self, kind: ReActEventType, iteration: int) -> dict[str, Any]:
        return {
            "event_type": kind,
            "timestamp": _now(),
            "trace_id": self.trace_id,
            "func_name": self.func_name,
            "iteration": iteration,
        }


async def react(
    llm: LLMInterface | ModelGroup,
    messages: list[Message],
    toolkit: Toolkit,
    params: dict[str, Any],
    *,
    stream: bool,
    max_tool_calls: int | None,
    func_name: str,
    user_task_prompt: str,
) -> AsyncGenerator[Output, None]:
    """Appends each assistant message and tool result to ``messages`` as it goes."""
    trace_id = str(params.get("trace_id", ""))
    ev = _Events(trace_id, func_name)
    specs = toolkit.specs
    tools = (
        [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in specs
        ]
        if specs
        else None
    )
    llm_kwargs = {k: v for k, v in params.items() if k != "trace_id"}
    started = time.monotonic()
    yield ev(
        ReactStartEvent(
            **ev.base(ReActEventType.REACT_START, 0),
            user_task_prompt=user_task_prompt,
            initial_messages=_dicts(messages),
            available_tools=tools,
        )
    )
    iteration = 0
    llm_calls = 0
    tool_calls = 0
    last_turn = False  # past max_tool_calls: one model turn without tools answers
    while True:
        if iteration > 0 and not last_turn:
            yield ev(
                ReactIterationStartEvent(
                    **ev.base(ReActEventType.REACT_ITERATION_START, iteration),
                    current_messages=_dicts(messages),
                )
            )
        turn_tools = None if last_turn else specs
        llm_calls += 1
        turn_started = time.monotonic()
        completion: Completion | None = None
        async for out in _model_turn(
            llm,
            messages,
            turn_tools,
            tools if turn_tools else None,
            llm_kwargs,
            params,
            stream=stream and not last_turn,
            ev=ev,
            iteration=iteration,
        ):
            if isinstance(out, Completion):
                completion = out
            else:
                yield out
        assert completion is not None
        messages.append(completion.to_message())
        calls = completion.tool_calls if turn_tools else []
        if calls and max_tool_calls is not None and tool_calls + len(calls) > max_tool_calls:
            # SimpleLLMFunc's cap: the calls are dropped, a turn without tools answers.
            messages.pop()
            iteration += 1
            last_turn = True
            continue
        if not calls:
            yield ev(
                ReactEndEvent(
                    **ev.base(ReActEventType.REACT_END, iteration),
                    final_response=completion.text,
                    final_messages=_dicts(messages),
                    total_iterations=iteration,
                    total_execution_time=time.monotonic() - started,
                    total_tool_calls=tool_calls,
                    total_llm_calls=llm_calls,
                    total_token_usage=usage_of(completion.usage),
                )
            )
            return
        async for out in _tool_batch(toolkit, calls, messages, ev, iteration + 1, llm, params):
            yield out
        tool_calls += len(calls)
        yield ev(
            ReactIterationEndEvent(
                **ev.base(ReActEventType.REACT_ITERATION_END, iteration + 1),
                messages=_dicts(messages),
                iteration_time=time.monotonic() - turn_started,
                tool_calls_count=len(calls),
            )
        )
        iteration += 1


async def _model_turn(
    llm: LLMInterface | ModelGroup,
    messages: list[Message],
    specs: Any,
    tools: list[dict[str, Any]] | None,
    llm_kwargs: dict[str, Any],
    params: dict[str, Any],
    *,
    stream: bool,
    ev: _Events,
    iteration: int,
) -> AsyncGenerator[Output | Completion, None]:
    sent = _dicts(messages)
    yield ev(
        LLMCallStartEvent(
            **ev.base(ReActEventType.LLM_CALL_START, iteration),
            messages=sent,
            tools=tools,
            llm_kwargs=llm_kwargs,
            stream=stream,
        )
    )
    started = time.monotonic()
    response: OpenAIObject
    if stream:
        maker = ChunkMaker(llm.model_name)
        content = ""
        index = 0
        completion: Completion | None = None
        chunk = maker.first()
        arg_deltas = ArgumentDeltas()
        async with aclosing(llm.chat_stream(messages, specs, **params)) as events:
            async for e in events:
                if isinstance(e, Done):
                    completion = e.completion
                    chunks = maker.last(e.completion)
                else:
                    piece = maker(e)
                    if piece is None:
                        continue
                    chunks = [piece] if index else [maker.first(), piece]
                    if isinstance(e, TextDelta):
                        content += e.text
                for chunk in chunks:
                    yield ev(
                        LLMChunkArriveEvent(
                            **ev.base(ReActEventType.LLM_CHUNK_ARRIVE, iteration),
                            chunk=chunk,
                            accumulated_content=content if index else "",
                            chunk_index=index,
                        )
                    )
                    index += 1
                    if isinstance(e, ToolCallDelta) and chunk is chunks[-1]:
                        for name, call_id, argname, delta in arg_deltas.feed(e):
                            yield ev.with_origin(
                                ToolCallArgumentsDeltaEvent(
                                    **ev.base(ReActEventType.TOOL_CALL_ARGUMENTS_DELTA, iteration),
                                    tool_name=name,
                                    tool_call_id=call_id,
                                    argname=argname,
                                    argcontent_delta=delta,
                                ),
                                name,
                                call_id,
                            )
                    yield ResponseYield(chunk, list(sent))
        assert completion is not None
        response = chunk
    else:
        completion = await llm.chat(messages, specs, **params)
        response = completion_of(completion, llm.model_name)
        yield ResponseYield(response, list(sent))
    yield ev(
        LLMCallEndEvent(
            **ev.base(ReActEventType.LLM_CALL_END, iteration),
            response=response,
            messages=sent,
            tool_calls=[_call_dict(c) for c in completion.tool_calls],
            execution_time=time.monotonic() - started,
            content=completion.text,
            reasoning_details=(
                [{"type": "reasoning.text", "text": completion.reasoning}]
                if completion.reasoning
                else []
            ),
            usage=usage_of(completion.usage),
        )
    )
    yield completion


async def _tool_batch(
    toolkit: Toolkit,
    calls: list[ToolCall],
    messages: list[Message],
    ev: _Events,
    iteration: int,
    llm: LLMInterface | ModelGroup,
    params: dict[str, Any],
) -> AsyncGenerator[Output, None]:
    yield ev(
        ToolCallsBatchStartEvent(
            **ev.base(ReActEventType.TOOL_CALLS_BATCH_START, iteration),
            tool_calls=[_call_dict(c) for c in calls],
            batch_size=len(calls),
        )
    )
    for c in calls:
        yield ev(
            ToolCallStartEvent(
                **ev.base(ReActEventType.TOOL_CALL_START, iteration),
                tool_name=c.name,
                tool_call_id=c.id,
                arguments=_arguments(c),
                tool_call=_call_dict(c),
            ),
            c,
        )
    queue: asyncio.Queue[EventYield] = asyncio.Queue()
    batch_started = time.monotonic()

    async def one(c: ToolCall) -> tuple[ToolCall, ToolResult, float]:
        emitter = ToolEventEmitter(
            _queue=queue,
            _trace_id=ev.trace_id,
            _func_name=ev.func_name,
            _iteration=iteration,
            _tool_name=c.name,
            _tool_call_id=c.id,
        )
        t0, started = time.monotonic(), time.time()
        result: ToolResult | None = None
        value: Any = _NOTHING
        try:
            result, value = await _run_tool(toolkit, c, {"event_emitter": emitter})
        finally:
            # Told to observe_tool (OpenTelemetry, ...) as llmplug's own tool loop does.
            if llm.registry.observed:
                text = None if result is None else _tool_text(result, value)
                _observe_tool(llm, toolkit, c, result, text, (started, t0), params)
        values[c.id] = value
        return c, result, time.monotonic() - t0

    values: dict[str, Any] = {}
    tasks = [asyncio.ensure_future(one(c)) for c in calls]
    results: dict[str, ToolResult] = {}
    summary: list[ToolCallResult] = []
    pending: set[asyncio.Future[Any]] = set(tasks)
    getter: asyncio.Future[EventYield] | None = None
    try:
        while pending or not queue.empty():
            if not pending:
                custom = queue.get_nowait()
                custom.origin.event_seq = ev.origin().event_seq
                yield custom
                continue
            if getter is None:
                getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(pending | {getter}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                custom = getter.result()
                getter = None
                custom.origin.event_seq = ev.origin().event_seq
                yield custom
            for task in [t for t in tasks if t in done]:
                pending.discard(task)
                # The tool's own events come before its end, as in SimpleLLMFunc.
                while not queue.empty():
                    custom = queue.get_nowait()
                    custom.origin.event_seq = ev.origin().event_seq
                    yield custom
                c, result, took = task.result()
                results[c.id] = result
                if result.is_error:
                    error = RuntimeError(result.content)
                    yield ev(
                        ToolCallErrorEvent(
                            **ev.base(ReActEventType.TOOL_CALL_ERROR, iteration),
                            tool_name=c.name,
                            tool_call_id=c.id,
                            arguments=_arguments(c),
                            error=error,
                            error_message=result.content,
                            error_type=result.error_type or type(error).__name__,
                            execution_time=took,
                        ),
                        c,
                    )
                    summary.append(
                        {
                            "tool_name": c.name,
                            "tool_call_id": c.id,
                            "result": {"error": result.content},
                            "execution_time": took,
                            "success": False,
                            "error": error,
                        }
                    )
                    continue
                # SimpleLLMFunc's result is the value the tool returned
                kept = values[c.id]
                value = _result_value(result.content) if kept is _NOTHING else kept
                yield ev(
                    ToolCallEndEvent(
                        **ev.base(ReActEventType.TOOL_CALL_END, iteration),
                        tool_name=c.name,
                        tool_call_id=c.id,
                        arguments=_arguments(c),
                        result=value,
                        execution_time=took,
                        success=True,
                    ),
                    c,
                )
                summary.append(
                    {
                        "tool_name": c.name,
                        "tool_call_id": c.id,
                        "result": value,
                        "execution_time": took,
                        "success": True,
                    }
                )
    finally:
        for t in [*pending, *([getter] if getter else [])]:
            t.cancel()
    for c in calls:
        result = results[c.id]
        content: str | list[ContentPart] = (
            result.content if result.images else _tool_text(result, values[c.id])
        )
        if result.images:
            content = (
                [TextPart(result.content), *result.images] if result.content else [*result.images]
            )
        messages.append(Message(role="tool", content=content, tool_call_id=c.id))
    failed = sum(1 for s in summary if not s.get("success"))
    yield ev(
        ToolCallsBatchEndEvent(
            **ev.base(ReActEventType.TOOL_CALLS_BATCH_END, iteration),
            tool_results=summary,
            batch_size=len(calls),
            total_execution_time=time.monotonic() - batch_started,
            success_count=len(calls) - failed,
            error_count=failed,
        )
    )
