"""SimpleLLMFunc 0.8.4's ReAct events (``SimpleLLMFunc.hooks.events``): the same class names,
fields and order of fields, filled by :mod:`llmplug.slf` from llmplug's typed events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypedDict

__all__ = [
    "CustomEvent",
    "LLMCallEndEvent",
    "LLMCallErrorEvent",
    "LLMCallStartEvent",
    "LLMChunkArriveEvent",
    "ReActEvent",
    "ReActEventType",
    "ReactEndEvent",
    "ReactIterationEndEvent",
    "ReactIterationStartEvent",
    "ReactStartEvent",
    "ToolCallArgumentsDeltaEvent",
    "ToolCallEndEvent",
    "ToolCallErrorEvent",
    "ToolCallResult",
    "ToolCallStartEvent",
    "ToolCallsBatchEndEvent",
    "ToolCallsBatchStartEvent",
]

#: SimpleLLMFunc's message and tool call dicts (OpenAI Chat shapes).
Messages = list[dict[str, Any]]


class ReActEventType(str, Enum):  # noqa: UP042 - str() as SimpleLLMFunc prints it
    REACT_START = "react_start"
    REACT_ITERATION_START = "react_iteration_start"
    LLM_CALL_START = "llm_call_start"
    LLM_CHUNK_ARRIVE = "llm_chunk_arrive"
    LLM_CALL_END = "llm_call_end"
    LLM_CALL_ERROR = "llm_call_error"
    TOOL_CALLS_BATCH_START = "tool_calls_batch_start"
    TOOL_CALL_START = "tool_call_start"
    TOOL_CALL_ARGUMENTS_DELTA = "tool_call_arguments_delta"
    TOOL_CALL_END = "tool_call_end"
    TOOL_CALL_ERROR = "tool_call_error"
    TOOL_CALLS_BATCH_END = "tool_calls_batch_end"
    REACT_ITERATION_END = "react_iteration_end"
    REACT_END = "react_end"
    CUSTOM_EVENT = "custom_event"


@dataclass(kw_only=True)
class ReActEvent:
    """What every event carries; ``iteration`` counts model turns from 0."""

    event_type: ReActEventType
    timestamp: datetime
    trace_id: str
    func_name: str
    iteration: int
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)


class ToolCallResult(TypedDict, total=False):
    tool_name: str
    tool_call_id: str
    result: Any
    execution_time: float
    success: bool
    error: Exception | None


@dataclass
class ReactStartEvent(ReActEvent):
    user_task_prompt: str
    initial_messages: Messages
    available_tools: list[dict[str, Any]] | None


@dataclass
class ReactIterationStartEvent(ReActEvent):
    current_messages: Messages


@dataclass
class LLMCallStartEvent(ReActEvent):
    messages: Messages
    tools: list[dict[str, Any]] | None
    llm_kwargs: dict[str, Any]
    stream: bool


@dataclass
class LLMChunkArriveEvent(ReActEvent):
    """``chunk`` has the OpenAI SDK's ``ChatCompletionChunk`` attribute shape."""

    chunk: Any
    accumulated_content: str
    chunk_index: int


@dataclass
class LLMCallEndEvent(ReActEvent):
    """``response`` has the ``ChatCompletion`` (or, streamed, the last chunk's) shape;
    ``usage`` has ``prompt_tokens``, ``completion_tokens`` and ``total_tokens``."""

    response: Any
    messages: Messages
    tool_calls: list[dict[str, Any]]
    execution_time: float
    content: str = ""
    reasoning_details: list[dict[str, Any]] = field(default_factory=list)
    usage: Any = None


@dataclass
class LLMCallErrorEvent(ReActEvent):
    error: Exception
    error_message: str
    error_type: str
    messages: Messages
    llm_kwargs: dict[str, Any]


@dataclass
class ToolCallsBatchStartEvent(ReActEvent):
    tool_calls: list[dict[str, Any]]
    batch_size: int


@dataclass
class ToolCallStartEvent(ReActEvent):
    tool_name: str
    tool_call_id: str
    arguments: dict[str, Any]
    tool_call: dict[str, Any]


@dataclass
class ToolCallArgumentsDeltaEvent(ReActEvent):
    tool_name: str
    tool_call_id: str
    argname: str
    argcontent_delta: str


@dataclass
class ToolCallEndEvent(ReActEvent):
    """``result`` is the tool's result as the model reads it: JSON decoded when it is JSON,
    else the text."""

    tool_name: str
    tool_call_id: str
    arguments: dict[str, Any]
    result: Any
    execution_time: float
    success: bool


@dataclass
class ToolCallErrorEvent(ReActEvent):
    tool_name: str
    tool_call_id: str
    arguments: dict[str, Any]
    error: Exception
    error_message: str
    error_type: str
    execution_time: float = 0.0


@dataclass
class ToolCallsBatchEndEvent(ReActEvent):
    tool_results: list[ToolCallResult]
    batch_size: int
    total_execution_time: float
    success_count: int
    error_count: int


@dataclass
class ReactIterationEndEvent(ReActEvent):
    messages: Messages
    iteration_time: float
    tool_calls_count: int


@dataclass
class ReactEndEvent(ReActEvent):
    final_response: str
    final_messages: Messages
    total_iterations: int
    total_execution_time: float
    total_tool_calls: int
    total_llm_calls: int
    total_token_usage: Any = None


@dataclass
class CustomEvent(ReActEvent):
    """An event a tool emitted through its :class:`~llmplug.slf.hooks.ToolEventEmitter`."""

    event_name: str
    data: Any = None
    tool_name: str | None = None
    tool_call_id: str | None = None
