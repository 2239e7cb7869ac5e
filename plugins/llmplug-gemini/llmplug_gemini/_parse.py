"""Parsing Gemini answers (``GenerateContentResponse``, whole or as SSE chunks) and error
bodies (``google.rpc.Status``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from llmplug import (
    Call,
    Completion,
    ErrorInfo,
    ErrorKind,
    RateLimits,
    ReasoningDelta,
    ResponseError,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmplug.wire import (
    JSON_ERRORS,
    classify_openai,
    count,
    decode_body,
    decode_event,
    kind_by_status,
    provider_data,
    seconds,
    text_of,
)

from ._request import SYNTHETIC, WIRE

__all__ = ["FINISH", "GeminiParser", "classify_error", "retry_delay"]

#: Gemini's finish reasons in the Chat vocabulary (others are passed on lowercased:
#: ``malformed_function_call``, ``unexpected_tool_call``, ``too_many_tool_calls``...).
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


class _FunctionCall(msgspec.Struct):
    name: str | None = None
    args: msgspec.Raw = msgspec.Raw()  # the JSON as sent: the tool call's arguments
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] | None = None
    role: str | None = None


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int | None = None


class _UsageMetadata(msgspec.Struct, rename="camel"):
    # Raw: each read by llmplug.wire.count, so a hostile number (1e999, "12", -5) costs
    # nothing but itself.
    prompt_token_count: msgspec.Raw = msgspec.Raw()
    candidates_token_count: msgspec.Raw = msgspec.Raw()
    total_token_count: msgspec.Raw = msgspec.Raw()
    thoughts_token_count: msgspec.Raw = msgspec.Raw()
    cached_content_token_count: msgspec.Raw = msgspec.Raw()
    tool_use_prompt_token_count: msgspec.Raw = msgspec.Raw()


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None
    block_reason_message: str | None = None


class _StreamError(msgspec.Struct):
    code: Any = None
    message: Any = None
    status: Any = None


class _Response(msgspec.Struct, rename="camel"):
    error: _StreamError | None = None  # a stream's error chunk
    candidates: list[_Candidate] | None = None
    usage_metadata: _UsageMetadata | None = None
    prompt_feedback: _PromptFeedback | None = None
    model_version: str | None = None
    response_id: str | None = None


_response = msgspec.json.Decoder(_Response)


def _n(v: msgspec.Raw) -> int:
    return (count(v) or 0) if v else 0


def _usage(u: _UsageMetadata) -> Usage:
    # Output tokens include the thinking (as OpenAI counts reasoning); input includes the
    # cached part and the tool-use prompt.
    inp = _n(u.prompt_token_count) + _n(u.tool_use_prompt_token_count)
    thoughts = _n(u.thoughts_token_count)
    out = _n(u.candidates_token_count) + thoughts
    total = _n(u.total_token_count) or inp + out
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=max(total, inp + out),
        cached_tokens=min(_n(u.cached_content_token_count), inp),
        reasoning_tokens=thoughts,
    )


class GeminiParser:
    """One response's parser (see :class:`llmplug.StreamParser`). Gemini's stream has no end
    marker: the parser sets ``complete`` at the finish reason and reads on for usage."""

    __slots__ = (
        "_call",
        "_calls",
        "_finish",
        "_id",
        "_model",
        "_prefix",
        "_reasoning",
        "_signature",
        "_text",
        "_usage",
        "complete",
        "done",
    )

    framing = "sse"

    def __init__(self, call: Call) -> None:
        self._call = call
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: list[ToolCall] = []
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._signature: str | None = None
        self._prefix = SYNTHETIC + os.urandom(4).hex() + "-"
        self.done = False  # never: Gemini sends no terminator
        self.complete = False

    # -- one response object, whole or a stream's chunk ------------------------------------------

    def _take(self, r: _Response, stream: bool) -> list[StreamEvent]:
        if r.error is not None:
            err = self._error(r.error)
            if stream:
                raise err
            raise ResponseError(err.message, status=200, code=err.code, kind=err.kind)
        if r.usage_metadata is not None:
            self._usage = _usage(r.usage_metadata)  # a stream's counts are cumulative
        self._model = r.model_version or self._model
        self._id = r.response_id or self._id
        if not r.candidates:
            fb = r.prompt_feedback
            if fb is not None and fb.block_reason:
                raise self._blocked(fb, stream)
            return []
        cand = next((c for c in r.candidates if (c.index or 0) == 0), r.candidates[0])
        events: list[StreamEvent] = []
        for part in (cand.content.parts if cand.content else None) or ():
            if part.function_call is not None:
                events.append(self._call_part(part, part.function_call))
                continue
            if part.thought_signature:
                self._signature = part.thought_signature
            if part.text:
                if part.thought:
                    self._reasoning.append(part.text)
                    events.append(ReasoningDelta(part.text))
                else:
                    self._text.append(part.text)
                    events.append(TextDelta(part.text))
        if cand.finish_reason:
            self._finish = cand.finish_reason
            self.complete = True
        return events

    def _call_part(self, part: _Part, fc: _FunctionCall) -> ToolCallDelta:
        index = len(self._calls)
        args = bytes(fc.args).decode() if fc.args else "{}"
        sig = part.thought_signature
        call = ToolCall(
            id=fc.id or f"{self._prefix}{index}",
            name=fc.name or "",
            arguments=args,
            provider_data=provider_data(WIRE, {"thoughtSignature": sig} if sig else None),
        )
        self._calls.append(call)
        return ToolCallDelta(index=index, id=call.id, name=call.name, arguments=args)

    def _error(self, err: _StreamError) -> StreamError:
        status = err.code if isinstance(err.code, int) and not isinstance(err.code, bool) else None
        name = err.status if isinstance(err.status, str) else None
        kind: ErrorKind | None = kind_by_status(status) if status is not None else None
        if name == "RESOURCE_EXHAUSTED":
            kind = "rate_limit"
        return StreamError(
            f"error in the stream: {text_of(err.message) or 'no message'}",
            partial=self.result(),
            provider=self._call.provider,
            model=self._call.model,
            status=status,
            code=name,
            type=name,
            kind=kind,
        )

    def _blocked(self, fb: _PromptFeedback, stream: bool) -> Exception:
        reason = fb.block_reason or "BLOCKED"
        message = f"the prompt was blocked ({reason})"
        if fb.block_reason_message:
            message += f": {fb.block_reason_message}"
        fields: dict[str, Any] = {
            "provider": self._call.provider,
            "model": self._call.model,
            "code": reason,
            "type": "prompt_blocked",
            "kind": "bad_request",
        }
        if stream:
            return StreamError(message, partial=self.result(), **fields)
        return ResponseError(message, status=200, **fields)

    # -- the contract ------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        if not event.data.strip():
            return []
        return self._take(decode_event(_response, event.data, self._call, self.result), True)

    def result(self, raw: bytes | None = None) -> Completion:
        finish = FINISH.get(self._finish, self._finish.lower()) if self._finish else None
        if finish == "stop" and self._calls:
            finish = "tool_calls"
        signature = self._signature
        return Completion(
            text="".join(self._text),
            tool_calls=list(self._calls),
            reasoning="".join(self._reasoning) or None,
            finish_reason=finish,
            usage=self._usage,
            model=self._model,
            raw=raw,
            response_id=self._id,
            provider_data=provider_data(
                WIRE, {"thoughtSignature": signature} if signature else None
            ),
        )

    def parse_body(self, body: bytes) -> Completion:
        self._take(decode_body(_response, body, self._call, "Gemini"), False)
        return self.result(body)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        """Gemini sends no rate-limit headers: its limits come in 429 bodies."""
        return None

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        return classify_error(status, headers, body)


# -- error bodies ------------------------------------------------------------------------------


class _Violation(msgspec.Struct, rename="camel"):
    quota_id: Any = None
    quota_metric: Any = None


class _Detail(msgspec.Struct, rename="camel"):
    type: Any = msgspec.field(name="@type", default=None)
    reason: Any = None
    retry_delay: Any = None
    violations: list[_Violation] | None = None


class _Status(msgspec.Struct):
    code: Any = None
    message: Any = None
    status: Any = None
    details: list[_Detail] | None = None


class _ErrorBody(msgspec.Struct):
    error: _Status | None = None


_error_body = msgspec.json.Decoder(_ErrorBody | list[_ErrorBody])
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)s\s*")
_AUTH_REASONS = frozenset(
    ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED", "API_KEY_HTTP_REFERRER_BLOCKED", "ACCESS_DENIED")
)
_TOO_LONG = re.compile(r"input token count.*exceeds|exceeds the maximum number of tokens", re.I)
_SCHEMA = re.compile(r"response_?json_?schema|response_?schema|responseMimeType", re.I)


def retry_delay(text: Any) -> float | None:
    """A ``google.protobuf.Duration`` in JSON (``"35s"``, ``"1.5s"``) as seconds."""
    if not isinstance(text, str):
        return None
    m = _DURATION.fullmatch(text)
    return seconds(m.group(1)) if m else None


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    """A Gemini error body (``{"error": {"code", "message", "status", "details"}}``, sometimes
    in a one-element list) classified: a revoked key's 400 ``API_KEY_INVALID`` is ``auth``,
    a 429's ``RetryInfo.retryDelay`` its retry delay (a per-day quota's makes it ``quota``),
    too many input tokens ``context_length``. A body of another shape is read as OpenAI's."""
    try:
        parsed = _error_body.decode(body)
    except (*JSON_ERRORS, msgspec.ValidationError):
        parsed = None
    if isinstance(parsed, list):
        parsed = parsed[0] if parsed else None
    err = parsed.error if parsed is not None else None
    if err is None or not isinstance(err.status, str):
        return classify_openai(status, headers, body)
    base = classify_openai(status, headers, body)
    message = text_of(err.message) or base.message
    details = err.details or []
    reasons = {d.reason for d in details if isinstance(d.reason, str)}
    delays = [d for d in (retry_delay(d.retry_delay) for d in details) if d is not None]
    daily = any("PerDay" in text_of(v.quota_id) for d in details for v in d.violations or ())
    kind: ErrorKind
    if reasons & _AUTH_REASONS or err.status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        kind = "auth"
    elif err.status == "RESOURCE_EXHAUSTED" or status == 429:
        kind = "quota" if daily else "rate_limit"
    elif status == 400 and _TOO_LONG.search(message):
        kind = "context_length"
    elif status == 400 and _SCHEMA.search(message):
        kind = "schema_unsupported"
    else:
        kind = kind_by_status(status, headers)
    return ErrorInfo(
        kind=kind,
        message=message,
        code=err.status,
        type=err.status,
        retry_after=delays[0] if delays else base.retry_after,
    )
