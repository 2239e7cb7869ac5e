"""Rendering replies and errors as Anthropic Messages bodies and SSE events."""

from __future__ import annotations

from typing import Any

import msgspec

from ._render import (
    arg_fragments,
    call_id,
    chat_finish_reason,
    chat_usage,
    error_object,
    model_of,
    new_id,
    text_pieces,
    words,
)
from ._replies import Error, RecordedRequest, Reply

_encode = msgspec.json.Encoder().encode

# Reply.finish_reason speaks Chat; a reason with no Chat name (pause_turn...) goes as it is.
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_STOP["content_filter"] = "refusal"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(err: Error) -> bytes:
    """``{"type": "error", "error": {"type", "message"}}``; `Error.type` None: the type
    Anthropic gives that status."""
    if err.body is not None:
        return err.body
    return _encode({"type": "error", "error": _error(err)})


def _error(err: Error) -> dict[str, Any]:
    default = _ERROR_TYPES.get(err.status, "api_error" if err.status >= 500 else "error")
    return {"type": err.type or default, "message": error_object(err)["message"]}


def _stop_reason(reply: Reply) -> str:
    if reply.refusal and reply.finish_reason is None:
        return "refusal"
    reason = chat_finish_reason(reply)
    return _STOP.get(reason, reason)


def usage(reply: Reply, req: RecordedRequest) -> dict[str, Any]:
    """Anthropic's usage: given with ``input_tokens``, as it is; else from the Chat counts,
    with the cached tokens left out of ``input_tokens`` as Anthropic counts them."""
    if reply.usage is not None and "input_tokens" in reply.usage:
        return dict(reply.usage)
    u = chat_usage(reply, req)
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {
        "input_tokens": u.get("prompt_tokens", 0) - cached,
        "output_tokens": u.get("completion_tokens", 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _blocks(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.reasoning:
        blocks.append({"type": "thinking", "thinking": reply.reasoning, "signature": "sig"})
    text = reply.text or reply.refusal or ""
    if text:
        blocks.append({"type": "text", "text": text})
    for i, call in enumerate(reply.tool_calls):
        arguments = msgspec.json.decode(call.arguments_json) if call.arguments_json else {}
        blocks.append(
            {"type": "tool_use", "id": call_id(call, i), "name": call.name, "input": arguments}
        )
    return blocks


def _message(reply: Reply | None, req: RecordedRequest, content: list[Any]) -> dict[str, Any]:
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model_of(reply, req),
        "content": content,
        "stop_reason": None,
        "stop_sequence": None,
    }


def messages_json(reply: Reply, req: RecordedRequest) -> bytes:
    body = _message(reply, req, _blocks(reply))
    body["stop_reason"] = _stop_reason(reply)
    if reply.usage_style != "none":
        body["usage"] = usage(reply, req)
    return _encode(body)


def event(type_: str, fields: dict[str, Any]) -> bytes:
    return b"event: " + type_.encode() + b"\ndata: " + _encode({"type": type_, **fields}) + b"\n\n"


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return event("content_block_delta", {"index": index, "delta": delta})


def messages_events(reply: Reply, req: RecordedRequest) -> list[bytes]:
    u = usage(reply, req) if reply.usage_style != "none" else None
    start = _message(reply, req, [])
    if u is not None:
        start["usage"] = {**u, "output_tokens": 1}
    out = [event("message_start", {"message": start}), event("ping", {})]
    index = 0
    if reply.reasoning:
        out.append(
            event(
                "content_block_start",
                {"index": index, "content_block": {"type": "thinking", "thinking": ""}},
            )
        )
        out += [
            _delta(index, {"type": "thinking_delta", "thinking": p}) for p in words(reply.reasoning)
        ]
        out.append(_delta(index, {"type": "signature_delta", "signature": "sig"}))
        out.append(event("content_block_stop", {"index": index}))
        index += 1
    pieces = text_pieces(reply) if reply.text else words(reply.refusal or "")
    if pieces:
        text_block: dict[str, Any] = {"type": "text", "text": ""}
        out.append(event("content_block_start", {"index": index, "content_block": text_block}))
        out += [_delta(index, {"type": "text_delta", "text": p}) for p in pieces]
        out.append(event("content_block_stop", {"index": index}))
        index += 1
    for i, call in enumerate(reply.tool_calls):
        block: dict[str, Any] = {
            "type": "tool_use",
            "id": call_id(call, i),
            "name": call.name,
            "input": {},
        }
        out.append(event("content_block_start", {"index": index, "content_block": block}))
        out += [
            _delta(index, {"type": "input_json_delta", "partial_json": f})
            for f in arg_fragments(call.arguments_json)
        ]
        out.append(event("content_block_stop", {"index": index}))
        index += 1
    delta: dict[str, Any] = {"delta": {"stop_reason": _stop_reason(reply), "stop_sequence": None}}
    if u is not None:
        delta["usage"] = {"output_tokens": u["output_tokens"]}
    out.append(event("message_delta", delta))
    out.append(event("message_stop", {}))
    return out


class MessagesTextStream:
    """A text answer streamed one delta at a time, for faults and in-stream errors (the same
    methods as ``_render.TextStream``)."""

    def __init__(self, req: RecordedRequest) -> None:
        self.req = req
        self.sent: list[str] = []

    def prelude(self) -> list[bytes]:
        start = _message(None, self.req, [])
        start["usage"] = {"input_tokens": len(self.req.body) // 4, "output_tokens": 1}
        block = {"type": "text", "text": ""}
        return [
            event("message_start", {"message": start}),
            event("content_block_start", {"index": 0, "content_block": block}),
        ]

    def delta(self, piece: str) -> bytes:
        self.sent.append(piece)
        return _delta(0, {"type": "text_delta", "text": piece})

    def finish(self) -> list[bytes]:
        tokens = len("".join(self.sent).split())
        return [
            event("content_block_stop", {"index": 0}),
            event(
                "message_delta",
                {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": tokens}},
            ),
            event("message_stop", {}),
        ]

    def error(self, err: Error) -> bytes:
        return event("error", {"error": _error(err)})
