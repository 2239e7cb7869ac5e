"""Rendering replies and errors as Gemini API bodies and SSE chunks
(``GenerateContentResponse``, ``google.rpc.Status``), and checking a Gemini request's shape."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from ._render import (
    chat_finish_reason,
    chat_usage,
    error_object,
    new_id,
    text_pieces,
    words,
)
from ._replies import Error, RecordedRequest, Reply

_encode = msgspec.json.Encoder().encode

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_FINISH["content_filter"] = "SAFETY"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def signature_of(name: str) -> str:
    """The thought signature the server gives a reply's first function call (base64, as
    Gemini's are): a client must send it back with the call on the next turn."""
    return base64.b64encode(f"sig-{name}".encode()).decode()


def model_of_path(req: RecordedRequest) -> str:
    """The model named in ``.../models/{model}:generateContent``."""
    name = req.path.rsplit("/models/", 1)[-1]
    return name.split(":", 1)[0] or "test-model"


def error_body(err: Error) -> bytes:
    """``{"error": {"code", "message", "status"}}``; `Error.type` (or `code`, when a string)
    is the status name, else the one Gemini gives the HTTP status."""
    if err.body is not None:
        return err.body
    return _encode({"error": _status(err)})


def _status(err: Error) -> dict[str, Any]:
    name = err.type or (err.code if isinstance(err.code, str) else None)
    default = _STATUS.get(err.status, "INTERNAL" if err.status >= 500 else "FAILED_PRECONDITION")
    return {
        "code": err.status,
        "message": error_object(err)["message"],
        "status": name or default,
    }


def usage(reply: Reply, req: RecordedRequest) -> dict[str, Any]:
    """Gemini's usageMetadata: given with ``promptTokenCount``, as it is; else from the Chat
    counts (the thoughts out of ``candidatesTokenCount``, as Gemini counts them)."""
    if reply.usage is not None and "promptTokenCount" in reply.usage:
        return dict(reply.usage)
    u = chat_usage(reply, req)
    thoughts = (u.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    cached = (u.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    prompt = u.get("prompt_tokens", 0)
    completion = u.get("completion_tokens", 0)
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": u.get("total_tokens", prompt + completion),
    }
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    if cached:
        out["cachedContentTokenCount"] = cached
    return out


def _finish(reply: Reply) -> str:
    reason = chat_finish_reason(reply)
    return _FINISH.get(reason, reason.upper())


def _call_parts(reply: Reply) -> list[dict[str, Any]]:
    parts = []
    for i, call in enumerate(reply.tool_calls):
        args = msgspec.json.decode(call.arguments_json) if call.arguments_json else {}
        fc: dict[str, Any] = {"name": call.name, "args": args}
        if call.id is not None:
            fc["id"] = call.id
        part: dict[str, Any] = {"functionCall": fc}
        if i == 0:  # Gemini signs a turn's first function call only
            part["thoughtSignature"] = signature_of(call.name)
        parts.append(part)
    return parts


def _candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        cand["finishReason"] = finish
    return cand


def _head(reply: Reply | None, req: RecordedRequest, rid: str) -> dict[str, Any]:
    model = reply.model if reply is not None and reply.model else model_of_path(req)
    return {"modelVersion": model, "responseId": rid}


def generate_json(reply: Reply, req: RecordedRequest) -> bytes:
    parts: list[dict[str, Any]] = []
    if reply.reasoning:
        parts.append({"text": reply.reasoning, "thought": True})
    text = reply.text or reply.refusal or ""
    if text:
        parts.append({"text": text})
    parts += _call_parts(reply)
    body: dict[str, Any] = {"candidates": [_candidate(parts, _finish(reply))]}
    if reply.usage_style != "none":
        body["usageMetadata"] = usage(reply, req)
    body.update(_head(reply, req, new_id("")))
    return _encode(body)


def _sse(body: dict[str, Any]) -> bytes:
    return b"data: " + _encode(body) + b"\r\n\r\n"


def generate_events(reply: Reply, req: RecordedRequest) -> list[bytes]:
    """One chunk per piece; the finish reason on the last content chunk, and the usage in a
    trailing chunk after it: a client must read on past the finish reason (Gemini's stream has
    no end marker)."""
    head = _head(reply, req, new_id(""))
    out = [
        _sse({"candidates": [_candidate([{"text": p, "thought": True}])], **head})
        for p in words(reply.reasoning or "")
    ]
    pieces = text_pieces(reply) if reply.text else words(reply.refusal or "")
    out += [_sse({"candidates": [_candidate([{"text": p}])], **head}) for p in pieces]
    out += [_sse({"candidates": [_candidate([part])], **head}) for part in _call_parts(reply)]
    out.append(_sse({"candidates": [_candidate([], _finish(reply))], **head}))
    if reply.usage_style != "none":
        out.append(_sse({"usageMetadata": usage(reply, req), **head}))
    return out


class GeminiTextStream:
    """A text answer streamed one delta at a time, for faults and in-stream errors (the same
    methods as ``_render.TextStream``)."""

    def __init__(self, req: RecordedRequest) -> None:
        self.req = req
        self.head = _head(None, req, new_id(""))
        self.sent: list[str] = []

    def prelude(self) -> list[bytes]:
        return []

    def delta(self, piece: str) -> bytes:
        self.sent.append(piece)
        return _sse({"candidates": [_candidate([{"text": piece}])], **self.head})

    def finish(self) -> list[bytes]:
        tokens = len("".join(self.sent).split())
        meta = {"promptTokenCount": len(self.req.body) // 4, "candidatesTokenCount": tokens}
        return [_sse({"candidates": [_candidate([], "STOP")], "usageMetadata": meta, **self.head})]

    def error(self, err: Error) -> bytes:
        return _sse({"error": _status(err)})


# -- requests --------------------------------------------------------------------------------

_PART_FIELDS = frozenset(
    (
        "text",
        "thought",
        "thoughtSignature",
        "inlineData",
        "fileData",
        "functionCall",
        "functionResponse",
        "executableCode",
        "codeExecutionResult",
    )
)


def malformed(body: Any) -> str | None:
    """What is wrong with a generateContent request body, as Gemini would refuse it (400), or
    None when it is well formed."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "contents must be a non-empty list"
    for i, c in enumerate(contents):
        if not isinstance(c, dict) or c.get("role") not in ("user", "model"):
            return f"contents[{i}].role must be 'user' or 'model'"
        parts = c.get("parts")
        if not isinstance(parts, list) or not parts:
            return f"contents[{i}].parts must be a non-empty list"
        for j, p in enumerate(parts):
            if not isinstance(p, dict) or not p.keys() & _PART_FIELDS - {"thoughtSignature"}:
                return f"contents[{i}].parts[{j}] has no data"
            unknown = sorted(p.keys() - _PART_FIELDS)
            if unknown:
                return f"Unknown name {unknown[0]!r} at 'contents[{i}].parts[{j}]'"
            fc = p.get("functionCall")
            if fc is not None and not (
                isinstance(fc, dict) and isinstance(fc.get("args", {}), dict)
            ):
                return f"contents[{i}].parts[{j}].functionCall.args must be an object"
            fr = p.get("functionResponse")
            if fr is not None and not (isinstance(fr, dict) and isinstance(fr.get("name"), str)):
                return f"contents[{i}].parts[{j}].functionResponse.name is required"
    for i, c in enumerate(contents[1:], 1):
        if c.get("role") == contents[i - 1].get("role"):
            return f"contents[{i}]: consecutive turns of role {c.get('role')!r}"
    unknown_top = sorted(
        body.keys()
        - {
            "contents",
            "systemInstruction",
            "tools",
            "toolConfig",
            "generationConfig",
            "safetySettings",
            "cachedContent",
        }
    )
    if unknown_top:
        return f"Invalid JSON payload received. Unknown name {unknown_top[0]!r}"
    return None
