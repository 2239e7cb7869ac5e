"""GenAI semantic-convention attributes (v1.41.0 names) of a call: what was asked, what came
back, and, when content capture is on, the messages in the conventions' structured form."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import msgspec

from llmplug import Call, Completion, ImagePart, Message, TextPart, ToolCall

__all__ = [
    "OPERATION",
    "common",
    "input_messages",
    "output_messages",
    "request",
    "response",
    "server",
    "system_instructions",
]

OPERATION = "chat"

# Call params (the neutral vocabulary) -> the conventions' request attributes.
_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("n", "gen_ai.request.choice.count"),
    # The conventions (1.41) name no reasoning effort: ours, outside their namespace.
    ("reasoning_effort", "llmplug.request.reasoning_effort"),
)
_encode = msgspec.json.Encoder().encode


@functools.lru_cache(maxsize=256)
def server(base_url: str) -> tuple[str, int] | None:
    """``server.address`` and ``server.port`` of an interface's base URL (the port its scheme
    implies when the URL gives none)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def common(provider: str, model: str, call: Call | None) -> dict[str, Any]:
    """What spans and metrics share: operation, provider, requested model, server."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    where = server(call.base_url) if call is not None else None
    if where is not None:
        attrs["server.address"], attrs["server.port"] = where
    return attrs


def request(call: Call) -> dict[str, Any]:
    """The request's parameters, conversation and output type (only those that are set)."""
    params = call.params
    attrs: dict[str, Any] = {"gen_ai.request.stream": call.stream}
    for name, key in _PARAMS:
        value = params.get(name)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            attrs[key] = value
    cap = params.get("max_tokens")
    if cap is None:
        cap = params.get("max_completion_tokens")
    if isinstance(cap, int) and not isinstance(cap, bool):
        attrs["gen_ai.request.max_tokens"] = cap
    stop = params.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = stop
    fmt = params.get("response_format")
    typed = isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json_object")
    attrs["gen_ai.output.type"] = "json" if typed else "text"
    if call.session_id:
        attrs["gen_ai.conversation.id"] = call.session_id
    return attrs


def response(c: Completion) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if c.response_id:
        attrs["gen_ai.response.id"] = c.response_id
    if c.model:
        attrs["gen_ai.response.model"] = c.model
    if c.finish_reason:
        attrs["gen_ai.response.finish_reasons"] = [c.finish_reason]
    u = c.usage
    if u is not None:
        attrs["gen_ai.usage.input_tokens"] = u.input_tokens
        attrs["gen_ai.usage.output_tokens"] = u.output_tokens
        if u.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = u.cached_tokens
        if u.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = u.reasoning_tokens
    return attrs


# -- content, in the conventions' structured form (JSON text on the span) -------------------


def _arguments(text: str) -> Any:
    try:
        return msgspec.json.decode(text) if text.strip() else {}
    except msgspec.DecodeError:
        return text  # what the model wrote, even when it is not JSON


def _image(part: ImagePart) -> dict[str, Any]:
    url = part.image_url.url
    if url.startswith("data:") and "," in url:
        head, data = url[5:].split(",", 1)
        mime = head.split(";", 1)[0] or None
        blob: dict[str, Any] = {"type": "blob", "modality": "image", "content": data}
        if mime:
            blob["mime_type"] = mime
        return blob
    return {"type": "uri", "modality": "image", "uri": url}


def _parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    out: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            out.append({"type": "text", "content": part.text})
        elif isinstance(part, ImagePart):
            out.append(_image(part))
    return out


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": _arguments(arguments)}


def _message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": m.tool_call_id, "response": m.text}],
        }
    parts = _parts(m.content)
    for tc in m.tool_calls or ():
        parts.append(_tool_call(tc.id, tc.function.name, tc.function.arguments))
    out: dict[str, Any] = {"role": m.role, "parts": parts}
    if m.name:
        out["name"] = m.name
    return out


def _system(m: Message) -> bool:
    return m.role in ("system", "developer")


def system_instructions(call: Call) -> str | None:
    parts = [p for m in call.messages if _system(m) for p in _parts(m.content)]
    return _encode(parts).decode() if parts else None


def input_messages(call: Call) -> str:
    return _encode([_message(m) for m in call.messages if not _system(m)]).decode()


def output_messages(c: Completion) -> str:
    parts: list[dict[str, Any]] = []
    if c.reasoning:
        parts.append({"type": "reasoning", "content": c.reasoning})
    if c.text:
        parts.append({"type": "text", "content": c.text})
    for tc in c.tool_calls:
        parts.append(_tool_call(tc.id, tc.name, tc.arguments))
    message = {"role": "assistant", "parts": parts, "finish_reason": c.finish_reason or "stop"}
    return _encode([message]).decode()


def tool_arguments(call: ToolCall) -> str:
    return call.arguments
