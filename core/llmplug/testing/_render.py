"""Rendering replies as Chat Completions and Responses bodies and SSE events."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import msgspec

from ._replies import Error, RecordedRequest, Reply, ToolCallReply

DEFAULT_MODEL = "test-model"
DONE = b"data: [DONE]\n\n"

_encode = msgspec.json.Encoder().encode
# A per-process prefix keeps ids of two server processes apart without the cost of uuid4.
_RUN = os.urandom(3).hex()
_counter = itertools.count(1)
_WORD = re.compile(r"\s*\S+|\s+")


def new_id(prefix: str) -> str:
    return f"{prefix}{_RUN}{next(_counter):06x}"


def words(text: str) -> list[str]:
    """Word pieces that join back to exactly `text` (leading spaces kept, like tokens)."""
    return _WORD.findall(text)


def filler(n: int) -> list[str]:
    """Deltas "a", " b", " c"...: the text of streams that faults and in-stream errors send."""
    return [("" if i == 0 else " ") + chr(97 + i % 26) for i in range(n)]


def text_pieces(reply: Reply) -> list[str]:
    chunks, text = reply.chunks, reply.text
    if chunks is None:
        return words(text)
    if isinstance(chunks, int):
        if not text:
            return []
        size = -(-len(text) // max(1, chunks))
        return [text[i : i + size] for i in range(0, len(text), size)]
    return list(chunks)


def arg_fragments(arguments: str) -> list[str]:
    # At least two fragments whenever possible: clients must join them, not take the first.
    if len(arguments) < 2:
        return [arguments] if arguments else []
    n = min(len(arguments), max(2, len(arguments) // 16))
    size = -(-len(arguments) // n)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def call_id(call: ToolCallReply, index: int) -> str:
    return call.id if call.id is not None else f"call_{index}"


def model_of(reply: Reply | None, req: RecordedRequest) -> str:
    if reply is not None and reply.model is not None:
        return reply.model
    return req.model or DEFAULT_MODEL


def chat_finish_reason(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return reply.finish_reason
    if reply.tool_calls:
        return "tool_calls"
    if reply.incomplete_reason == "max_output_tokens":
        return "length"
    if reply.incomplete_reason == "content_filter":
        return "content_filter"
    return "stop"


def chat_usage(reply: Reply, req: RecordedRequest) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    prompt = len(req.body) // 4
    reasoning = len((reply.reasoning or "").split())
    completion = (
        reasoning
        + len(reply.text.split())
        + len((reply.refusal or "").split())
        + sum(len(call.arguments_json.split()) for call in reply.tool_calls)
    )
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def responses_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    if "input_tokens" in usage:
        return dict(usage)
    inp = usage.get("prompt_tokens", 0)
    out = usage.get("completion_tokens", 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": usage.get("total_tokens", inp + out),
        "input_tokens_details": {"cached_tokens": prompt_details.get("cached_tokens", 0)},
        "output_tokens_details": {
            "reasoning_tokens": completion_details.get("reasoning_tokens", 0)
        },
    }


def error_object(err: Error) -> dict[str, Any]:
    message = err.message
    if message is None:
        try:
            message = HTTPStatus(err.status).phrase
        except ValueError:
            message = f"error {err.status}"
    return {"message": message, "type": err.type, "param": err.param, "code": err.code}


def error_body(err: Error) -> bytes:
    return err.body if err.body is not None else _encode({"error": error_object(err)})


def simple_error(status: int, message: str, type_: str, code: str | None = None) -> bytes:
    return error_body(Error(status=status, message=message, type=type_, code=code))


def models_body(models: Sequence[str]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "llmplug"} for m in models]
    return _encode({"object": "list", "data": data})


# ---------------------------------------------------------------------------------------------
# Chat Completions


class ChatChunks:
    """chat.completion.chunk events sharing one id, timestamp and model."""

    def __init__(self, req: RecordedRequest, model: str) -> None:
        self.head = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        opts = req.json.get("stream_options") if isinstance(req.json, dict) else None
        self.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        self.null_usage = False

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, top: dict[str, Any] | None = None
    ) -> bytes:
        body: dict[str, Any] = {
            **self.head,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if self.null_usage:
            body["usage"] = None
        if top:
            body.update(top)
        return b"data: " + _encode(body) + b"\n\n"

    def usage_chunk(self, usage: dict[str, Any]) -> bytes:
        return b"data: " + _encode({**self.head, "choices": [], "usage": usage}) + b"\n\n"


def chat_json(reply: Reply, req: RecordedRequest) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call_id(call, i),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    message["refusal"] = reply.refusal
    if reply.reasoning is not None:
        message[reply.reasoning_field] = reply.reasoning
    body: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_of(reply, req),
        "choices": [{"index": 0, "message": message, "finish_reason": chat_finish_reason(reply)}],
    }
    if reply.usage_style != "none":
        body["usage"] = chat_usage(reply, req)
    return _encode(body)


def chat_events(reply: Reply, req: RecordedRequest) -> list[bytes]:
    s = ChatChunks(req, model_of(reply, req))
    style = reply.usage_style
    s.null_usage = style == "include_usage" and s.include_usage
    out = [s.chunk({"role": "assistant"})]
    if reply.reasoning:
        field = reply.reasoning_field
        out += [s.chunk({field: piece}) for piece in words(reply.reasoning)]
    out += [s.chunk({"content": piece}) for piece in text_pieces(reply)]
    if reply.refusal:
        out += [s.chunk({"refusal": piece}) for piece in words(reply.refusal)]
    for i, call in enumerate(reply.tool_calls):
        first = {
            "index": i,
            "id": call_id(call, i),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append(s.chunk({"tool_calls": [first]}))
        out += [
            s.chunk({"tool_calls": [{"index": i, "function": {"arguments": fragment}}]})
            for fragment in arg_fragments(call.arguments_json)
        ]
    usage = chat_usage(reply, req)
    top: dict[str, Any] = {}
    if style == "groq":
        top["x_groq"] = {"id": new_id("req_"), "usage": usage}
    elif style == "finish_chunk":
        top["usage"] = usage
    out.append(s.chunk({}, chat_finish_reason(reply), top))
    if style == "always" or (style == "include_usage" and s.include_usage):
        out.append(s.usage_chunk(usage))
    out.append(DONE)
    return out


# ---------------------------------------------------------------------------------------------
# Responses


class ResponsesEvents:
    """Responses stream events sharing one response id, numbered by sequence_number."""

    def __init__(self, model: str) -> None:
        self.id = new_id("resp_")
        self.created_at = int(time.time())
        self.model = model
        self.seq = 0

    def event(self, type_: str, fields: dict[str, Any]) -> bytes:
        data = {"type": type_, **fields, "sequence_number": self.seq}
        self.seq += 1
        return b"event: " + type_.encode() + b"\ndata: " + _encode(data) + b"\n\n"

    def response(
        self,
        status: str = "in_progress",
        output: Sequence[dict[str, Any]] = (),
        usage: dict[str, Any] | None = None,
        incomplete_reason: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "model": self.model,
            "status": status,
            "incomplete_details": (
                {"reason": incomplete_reason} if incomplete_reason is not None else None
            ),
            "output": list(output),
            "usage": usage,
            "error": error,
        }

    def start(self) -> list[bytes]:
        r = self.response()
        return [
            self.event("response.created", {"response": r}),
            self.event("response.in_progress", {"response": r}),
        ]


def _response_items(reply: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.reasoning:
        summary = [{"type": "summary_text", "text": reply.reasoning}]
        items.append({"type": "reasoning", "id": new_id("rs_"), "summary": summary})
    if reply.text or reply.refusal:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "output_text", "text": reply.text, "annotations": []})
        if reply.refusal:
            content.append({"type": "refusal", "refusal": reply.refusal})
        items.append(
            {
                "type": "message",
                "id": new_id("msg_"),
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        )
    for i, call in enumerate(reply.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc_"),
                "call_id": call_id(call, i),
                "name": call.name,
                "arguments": call.arguments_json,
                "status": "completed",
            }
        )
    return items


def _final_response(
    s: ResponsesEvents, reply: Reply, req: RecordedRequest, items: list[dict[str, Any]]
) -> dict[str, Any]:
    status = reply.status or ("incomplete" if reply.incomplete_reason else "completed")
    usage = None
    if reply.usage_style != "none":
        usage = responses_usage(chat_usage(reply, req))
    return s.response(status, items, usage, reply.incomplete_reason)


def responses_json(reply: Reply, req: RecordedRequest) -> bytes:
    s = ResponsesEvents(model_of(reply, req))
    return _encode(_final_response(s, reply, req, _response_items(reply)))


def responses_events(reply: Reply, req: RecordedRequest) -> list[bytes]:
    s = ResponsesEvents(model_of(reply, req))
    items = _response_items(reply)
    out = s.start()
    for idx, item in enumerate(items):
        kind, at = item["type"], {"item_id": item["id"], "output_index": idx}
        if kind == "reasoning":
            out.append(
                s.event(
                    "response.output_item.added",
                    {"output_index": idx, "item": {**item, "summary": []}},
                )
            )
            text = item["summary"][0]["text"]
            part = {**at, "summary_index": 0}
            out += [
                s.event("response.reasoning_summary_text.delta", {**part, "delta": piece})
                for piece in words(text)
            ]
            out.append(s.event("response.reasoning_summary_text.done", {**part, "text": text}))
        elif kind == "message":
            added = {**item, "status": "in_progress", "content": []}
            out.append(s.event("response.output_item.added", {"output_index": idx, "item": added}))
            for ci, content in enumerate(item["content"]):
                out += _content_part_events(s, reply, {**at, "content_index": ci}, content)
        else:
            added = {**item, "arguments": "", "status": "in_progress"}
            out.append(s.event("response.output_item.added", {"output_index": idx, "item": added}))
            out += [
                s.event("response.function_call_arguments.delta", {**at, "delta": fragment})
                for fragment in arg_fragments(item["arguments"])
            ]
            done = {**at, "name": item["name"], "arguments": item["arguments"]}
            out.append(s.event("response.function_call_arguments.done", done))
        out.append(s.event("response.output_item.done", {"output_index": idx, "item": item}))
    final = _final_response(s, reply, req, items)
    status = final["status"]
    kind = {"incomplete": "response.incomplete", "failed": "response.failed"}.get(
        status, "response.completed"
    )
    out.append(s.event(kind, {"response": final}))
    return out


def _content_part_events(
    s: ResponsesEvents, reply: Reply, at: dict[str, Any], content: dict[str, Any]
) -> list[bytes]:
    if content["type"] == "output_text":
        empty: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
        name, pieces, key = "output_text", text_pieces(reply), "text"
    else:
        empty = {"type": "refusal", "refusal": ""}
        name, pieces, key = "refusal", words(content["refusal"]), "refusal"
    out = [s.event("response.content_part.added", {**at, "part": empty})]
    out += [s.event(f"response.{name}.delta", {**at, "delta": piece}) for piece in pieces]
    out.append(s.event(f"response.{name}.done", {**at, key: content[key]}))
    out.append(s.event("response.content_part.done", {**at, "part": content}))
    return out


# ---------------------------------------------------------------------------------------------
# Plain text streams for faults and in-stream errors


class TextStream:
    """A text answer streamed one delta at a time in either API's framing, for faults and errors."""

    def __init__(self, api: str, req: RecordedRequest) -> None:
        self.req = req
        self.responses = api == "responses"
        self.chat = ChatChunks(req, model_of(None, req))
        self.resp = ResponsesEvents(model_of(None, req))
        self.item_id = new_id("msg_")
        self.sent: list[str] = []

    def _at(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": 0, "content_index": 0}

    def _message(self, status: str) -> dict[str, Any]:
        text = "".join(self.sent)
        part = {"type": "output_text", "text": text, "annotations": []}
        return {
            "type": "message",
            "id": self.item_id,
            "role": "assistant",
            "status": status,
            "content": [part],
        }

    def prelude(self) -> list[bytes]:
        if not self.responses:
            return [self.chat.chunk({"role": "assistant"})]
        item = {**self._message("in_progress"), "content": []}
        empty = {"type": "output_text", "text": "", "annotations": []}
        return [
            *self.resp.start(),
            self.resp.event("response.output_item.added", {"output_index": 0, "item": item}),
            self.resp.event("response.content_part.added", {**self._at(), "part": empty}),
        ]

    def delta(self, piece: str) -> bytes:
        self.sent.append(piece)
        if not self.responses:
            return self.chat.chunk({"content": piece})
        return self.resp.event("response.output_text.delta", {**self._at(), "delta": piece})

    def finish(self) -> list[bytes]:
        if not self.responses:
            return [self.chat.chunk({}, "stop"), DONE]
        message = self._message("completed")
        text, r = message["content"][0]["text"], self.resp
        usage = responses_usage(chat_usage(Reply(text=text), self.req))
        return [
            r.event("response.output_text.done", {**self._at(), "text": text}),
            r.event("response.content_part.done", {**self._at(), "part": message["content"][0]}),
            r.event("response.output_item.done", {"output_index": 0, "item": message}),
            r.event("response.completed", {"response": r.response("completed", [message], usage)}),
        ]

    def error(self, err: Error) -> bytes:
        obj = error_object(err)
        if not self.responses:
            return b"data: " + _encode({"error": obj}) + b"\n\n"
        code = err.code if err.code is not None else err.type
        if err.responses_event == "response.failed":
            failed = self.resp.response(
                "failed",
                [self._message("incomplete")],
                error={"code": code, "message": obj["message"]},
            )
            return self.resp.event("response.failed", {"response": failed})
        fields = {"code": code, "message": obj["message"], "param": err.param}
        return self.resp.event("error", fields)
