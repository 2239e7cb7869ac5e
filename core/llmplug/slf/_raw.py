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

from llmplug._vocab._types import Completion, ReasoningDelta, TextDelta, ToolCallDelta, Usage

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


#: The SDK's classes (openai 1.x-3.x): name -> (fields in the SDK's order, the class of the
#: objects a field holds). Their reprs and attributes are what SimpleLLMFunc code prints.
def _f(names: str) -> tuple[str, ...]:
    return tuple(names.split())


_SHAPES: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "ChatCompletion": (
        _f("id choices created model object service_tier system_fingerprint usage"),
        {"choices": "Choice", "usage": "CompletionUsage"},
    ),
    "Choice": (("finish_reason", "index", "logprobs", "message"), {"message": "Message"}),
    "Message": (
        ("content", "refusal", "role", "annotations", "audio", "function_call", "tool_calls"),
        {"tool_calls": "ChatCompletionMessageFunctionToolCall"},
    ),
    "ChatCompletionMessageFunctionToolCall": (("id", "function", "type"), {"function": "Function"}),
    "Function": (("arguments", "name"), {}),
    "ChatCompletionChunk": (
        _f("id choices created model object service_tier system_fingerprint usage"),
        {"choices": "ChunkChoice", "usage": "CompletionUsage"},
    ),
    "ChunkChoice": (("delta", "index", "finish_reason", "logprobs"), {"delta": "ChoiceDelta"}),
    "ChoiceDelta": (
        ("audio", "content", "function_call", "refusal", "role", "tool_calls"),
        {"tool_calls": "ChoiceDeltaToolCall"},
    ),
    "ChoiceDeltaToolCall": (
        ("index", "id", "function", "type"),
        {"function": "ChoiceDeltaToolCallFunction"},
    ),
    "ChoiceDeltaToolCallFunction": (("arguments", "name"), {}),
    "CompletionUsage": (
        _f("completion_tokens prompt_tokens total_tokens")
        + _f("completion_tokens_details prompt_tokens_details"),
        {
            "completion_tokens_details": "CompletionTokensDetails",
            "prompt_tokens_details": "PromptTokensDetails",
        },
    ),
    "CompletionTokensDetails": (
        _f("accepted_prediction_tokens audio_tokens reasoning_tokens rejected_prediction_tokens"),
        {},
    ),
    "PromptTokensDetails": (("audio_tokens", "cached_tokens"), {}),
}
#: The SDK's class names where two shapes share one.
_NAMES = {"Message": "ChatCompletionMessage", "ChunkChoice": "Choice"}


class OpenAIObject:
    """Attribute access over a decoded JSON object, as the SDK's pydantic models give it: a
    field of the SDK's class that the server did not send reads as None, any other name it
    did not send raises AttributeError; nested objects are OpenAIObjects of their SDK class;
    ``model_dump()`` gives the dict back; the repr is the SDK's."""

    __slots__ = ("_data", "_shape")
    _data: dict[str, Any]
    _shape: str | None

    def __init__(self, data: dict[str, Any], shape: str | None = None) -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_shape", shape or _default_shape(type(self)))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        fields, kinds = _SHAPES.get(self._shape or "", ((), {}))
        if name in self._data:
            return _wrap(self._data[name], kinds.get(name))
        if self._shape is None or name in fields:
            return None
        raise AttributeError(f"{self._name()!r} object has no attribute {name!r}")

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name) if name in self._data else self._data[name]

    def _name(self) -> str:
        if self._shape is None:
            return type(self).__name__
        return _NAMES.get(self._shape, self._shape)

    def __contains__(self, name: object) -> bool:
        return name in self._data

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        # pydantic models iterate as (field, value) pairs
        return ((k, getattr(self, k)) for k in self._fields())

    def _fields(self) -> list[str]:
        declared = list(_SHAPES.get(self._shape or "", ((), {}))[0])
        return declared + [k for k in self._data if k not in declared]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OpenAIObject):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields())
        return f"{self._name()}({fields})"

    __str__ = __repr__  # the openai package's models print as their repr

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


def _default_shape(cls: type) -> str | None:
    return cls.__name__ if cls.__name__ in _SHAPES else None


def _wrap(value: Any, shape: str | None = None) -> Any:
    if isinstance(value, dict):
        return OpenAIObject(value, shape)
    if isinstance(value, list):
        return [_wrap(v, shape) for v in value]
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
        call: dict[str, Any] = {"index": ev.index, "function": fn}
        if ev.id is not None:  # the first piece of a call, as OpenAI sends it
            call["id"] = ev.id
            call["type"] = "function"
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
