"""The tool loop shared by ``llm_function`` and ``llm_chat``: call the model, run the tools it
asks for (concurrently), send the results back, until it answers without tools."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from ._errors import LLMError
from ._events import AssistantReply, ToolCallEvent, ToolResultEvent
from ._observe import observed_tools
from ._tool import Toolkit
from ._types import (
    Completion,
    ContentPart,
    Done,
    Message,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    Usage,
)

if TYPE_CHECKING:
    from ._group import ModelGroup
    from ._interface import LLMInterface

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
