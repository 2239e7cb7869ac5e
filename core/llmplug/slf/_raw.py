"""The OpenAI SDK's response shapes (``ChatCompletion``, ``ChatCompletionChunk``,
``CompletionUsage``), without the openai package: what SimpleLLMFunc code reads from a raw
response (``raw.choices[0].delta.content``, ``response.usage.total_tokens``, ...).

A whole Chat Completions answer is its body's own bytes, decoded; anything else (stream
chunks, Responses API answers) is rebuilt from llmplug's typed events in the same shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec

from llmplug._types import Completion, ReasoningDelta, TextDelta, ToolCallDelta, Usage

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChunkMaker",
    "CompletionUsage",
    "OpenAIObject",
    "chunk_of",
    "completion_of",
    "usage_of",
]


class OpenAIObject:
    """Attribute access over a decoded JSON object, as the SDK's pydantic models give it: a
    field the server did not send reads as None, nested objects and lists of objects are
    OpenAIObjects too; ``model_dump()`` gives the dict back."""

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _wrap(self._data.get(name))

    def __getitem__(self, name: str) -> Any:
        return _wrap(self._data[name])

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # pydantic models iterate as (field, value) pairs
        return ((k, _wrap(v)) for k, v in self._data.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OpenAIObject):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        kind = type(self).__name__
        fields = ", ".join(f"{k}={_wrap(v)!r}" for k, v in self._data.items())
        return f"{kind}({fields})"

    def model_dump(self, **_: Any) -> dict[str, Any]:
        return msgspec.json.decode(msgspec.json.encode(self._data))  # type: ignore[no-any-return]

    def model_dump_json(self, **_: Any) -> str:
        return msgspec.json.encode(self._data).decode()

    to_dict = model_dump
    to_json = model_dump_json


class ChatCompletion(OpenAIObject):
    """A whole answer, as ``openai.types.chat.ChatCompletion`` reads."""

    __slots__ = ()


class ChatCompletionChunk(OpenAIObject):
    """One streamed chunk, as ``openai.types.chat.ChatCompletionChunk`` reads."""

    __slots__ = ()


class CompletionUsage(OpenAIObject):
    """Token counts, as ``openai.types.CompletionUsage`` reads."""

    __slots__ = ()


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return OpenAIObject(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def usage_of(usage: Usage | None) -> OpenAIObject | None:
    """A ``CompletionUsage``: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``."""
    if usage is None:
        return None
    return CompletionUsage(_usage_dict(usage))


def _usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens or usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def completion_of(c: Completion, model: str) -> OpenAIObject:
    """A ``ChatCompletion``: the body as the server sent it (Chat Completions), else rebuilt."""
    body = c.raw
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("choices"), list):
            return ChatCompletion(data)
    message: dict[str, Any] = {"role": "assistant", "content": c.text or None}
    if c.reasoning:
        message["reasoning_content"] = c.reasoning
    if c.refusal:
        message["refusal"] = c.refusal
    if c.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in c.tool_calls
        ]
    return ChatCompletion(
        {
            "id": c.request_id or "chatcmpl-llmplug",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": c.model or model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": c.finish_reason or "stop"}
            ],
            "usage": _usage_dict(c.usage) if c.usage is not None else None,
        }
    )


class ChunkMaker:
    """The ``ChatCompletionChunk`` of each event of one streamed answer."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.created = int(time.time())
        self.id = "chatcmpl-llmplug"

    def __call__(self, ev: object) -> OpenAIObject | None:
        return chunk_of(ev, self.model, self.id, self.created)

    def first(self) -> OpenAIObject:
        """The stream's opening chunk, as OpenAI-compatible servers send it: the role."""
        return self._chunk({"role": "assistant", "content": None}, None, None)

    def last(self, c: Completion) -> list[OpenAIObject]:
        """The stream's closing chunks: the finish reason, then (when the server counted)
        the usage, with no choices, as OpenAI sends them."""
        out = [self._chunk({}, c.finish_reason or "stop", c.model)]
        if c.usage is not None:
            usage = self._chunk({}, None, c.model)
            usage._data["choices"] = []
            usage._data["usage"] = _usage_dict(c.usage)
            out.append(usage)
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None, model: str | None) -> OpenAIObject:
        return ChatCompletionChunk(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model or self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "usage": None,
            }
        )


def chunk_of(ev: object, model: str, id: str, created: int) -> OpenAIObject | None:
    """A ``ChatCompletionChunk`` for a stream event (None for events that are not content)."""
    delta: dict[str, Any]
    if isinstance(ev, TextDelta):
        delta = {"role": "assistant", "content": ev.text}
    elif isinstance(ev, ReasoningDelta):
        delta = {"role": "assistant", "content": None, "reasoning_content": ev.text}
    elif isinstance(ev, ToolCallDelta):
        fn: dict[str, Any] = {"arguments": ev.arguments}
        if ev.name is not None:
            fn["name"] = ev.name
        call: dict[str, Any] = {"index": ev.index, "function": fn, "type": "function"}
        if ev.id is not None:
            call["id"] = ev.id
        delta = {"role": "assistant", "content": None, "tool_calls": [call]}
    else:
        return None
    return ChatCompletionChunk(
        {
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            "usage": None,
        }
    )
