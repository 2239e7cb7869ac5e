"""The tool loop shared by ``llm_function`` and ``llm_chat``: call the model, run the tools it
asks for (concurrently), send the results back, until it answers without tools."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from llmplug._engine._observe import Status, ToolInfo, notify
from llmplug._vocab._errors import LLMError
from llmplug._vocab._types import (
    Completion,
    ContentPart,
    Done,
    Message,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    Usage,
)

from ._events import AssistantReply, ToolCallEvent, ToolResultEvent
from ._tool import Toolkit, ToolResult

if TYPE_CHECKING:
    from llmplug._engine._registry import Registry
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["ToolLoopError", "TurnsDone", "run_turns"]


class ToolLoopError(LLMError):
    """The model kept asking for tools past ``max_tool_calls``."""


class TurnsDone:
    """Internal last event of :func:`run_turns`."""

    __slots__ = ("completion", "usage")

    def __init__(self, completion: Completion, usage: Usage) -> None:
        self.completion = completion
        self.usage = usage


async def run_turns(
    llm: LLMInterface | ModelGroup,
    messages: list[Message],
    toolkit: Toolkit,
    params: dict[str, Any],
    *,
    stream: bool,
    max_tool_calls: int | None,
) -> AsyncGenerator[
    StreamEvent | AssistantReply | ToolCallEvent | ToolResultEvent | TurnsDone, None
]:
    """Appends every assistant message and tool result to ``messages`` as it goes."""
    used = 0
    usage = Usage()
    tools = toolkit.specs
    while True:
        if stream:
            completion: Completion | None = None
            async with aclosing(llm.chat_stream(messages, tools, **params)) as events:
                async for ev in events:
                    if isinstance(ev, Done):
                        completion = ev.completion
                    elif isinstance(ev, (TextDelta, ReasoningDelta)):
                        yield ev
            assert completion is not None
        else:
            completion = await llm.chat(messages, tools, **params)
            yield AssistantReply(completion.text, completion)
        if completion.usage is not None:
            usage = usage + completion.usage
        messages.append(completion.to_message())
        calls = completion.tool_calls
        if not calls or not toolkit:
            yield TurnsDone(completion, usage)
            return
        used += len(calls)
        if max_tool_calls is not None and used > max_tool_calls:
            raise ToolLoopError(
                f"the model asked for {used} tool calls, more than max_tool_calls={max_tool_calls}",
                provider=llm.provider_id,
                model=llm.model_name,
            )
        for call in calls:
            yield ToolCallEvent(call)
        registry = llm.registry
        results = await (
            observed_tools(registry, toolkit, calls, params)
            if registry.observed
            else toolkit.run_all(calls)
        )
        for result in results:
            content: str | list[ContentPart] = result.content
            if result.images:
                # Neutral form: the images stay in the tool message; each wire plugin sends
                # them where its API takes them.
                content = (
                    [TextPart(result.content), *result.images]
                    if result.content
                    else [*result.images]
                )
            messages.append(Message(role="tool", content=content, tool_call_id=result.call.id))
            yield ToolResultEvent(result)


async def observed_tools(
    registry: Registry, toolkit: Toolkit, calls: list[ToolCall], params: dict[str, Any]
) -> list[ToolResult]:
    """``toolkit.run_all(calls)``, each call told to ``observe_tool`` as it ends."""
    trace_id, session_id = params.get("trace_id"), params.get("session_id")

    async def one(call: ToolCall) -> ToolResult:
        started, t0 = time.time(), time.perf_counter()
        result: ToolResult | None = None
        try:
            result = await toolkit.run_one(call)
            return result
        finally:
            status: Status = (
                "interrupted" if result is None else "error" if result.is_error else "ok"
            )
            info = ToolInfo(
                call=call,
                status=status,
                started=started,
                duration_s=time.perf_counter() - t0,
                result=result.content if result is not None else None,
                error_type=result.error_type if result is not None else None,
                description=toolkit.description(call.name),
                trace_id=None if trace_id is None else str(trace_id),
                session_id=session_id if isinstance(session_id, str) else None,
            )
            notify(registry, "observe_tool", info)

    import asyncio  # with the first tool run: `import llmplug` imports no asyncio

    return list(await asyncio.gather(*(one(c) for c in calls)))
