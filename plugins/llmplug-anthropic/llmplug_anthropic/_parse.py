"""Parsing Messages API answers: whole bodies, and streams dispatched on each event's ``type``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

from . import _shapes as s
from ._request import WIRE, answer_tool_name

__all__ = ["ERROR_KIND", "MessagesParser", "RateLimits", "classify_error", "rate_limits"]

# The Chat finish reasons, so code above the wire cannot tell the wires apart.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The HTTP status each error type comes with when it is not in a stream, so the retry policy
# treats an error event like the status it stands for (overloaded_error: 529, retried).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# What each error type means to the retry policy and to model groups.
ERROR_KIND: dict[str, ErrorKind] = {
    "invalid_request_error": "bad_request",
    "authentication_error": "auth",
    "billing_error": "quota",
    "permission_error": "auth",
    "not_found_error": "bad_request",
    "request_too_large": "bad_request",
    "rate_limit_error": "rate_limit",
    "api_error": "server",
    "timeout_error": "server",
    "overloaded_error": "server",
}
# Anthropic says some things in words only, as an invalid_request_error: "prompt is too long:
# 210000 tokens > 200000 maximum", "Your credit balance is too low to access the Anthropic API".
_TOO_LONG = "prompt is too long"
_NO_CREDIT = "credit balance is too low"


def error_kind(etype: str | None, message: str, status: int | None) -> ErrorKind | None:
    """The kind of an Anthropic error of type ``etype`` (None: unknown, judged by status)."""
    kind = ERROR_KIND.get(etype or "")
    if kind in (None, "bad_request"):
        words = message.lower()
        if _TOO_LONG in words:
            return "context_length"
        if _NO_CREDIT in words:
            return "quota"
    if kind is None and status is not None:
        return kind_by_status(status)
    return kind


class _ErrorBody(msgspec.Struct):
    error: s.Error | None = None


_error_body = msgspec.json.Decoder(_ErrorBody)


def classify_error(status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
    """An Anthropic error response (``{"type": "error", "error": {"type", "message"}}``)
    classified by its error type; a body of another shape (a proxy's) as OpenAI's."""
    try:
        err = _error_body.decode(body).error
    except (*JSON_ERRORS, msgspec.ValidationError):
        err = None
    etype = err.type if err is not None and isinstance(err.type, str) else None
    if err is None or etype is None:
        return classify_openai(status, headers, body)
    base = classify_openai(status, headers, body)
    message = text_of(err.message) or base.message
    return ErrorInfo(
        kind=error_kind(etype, message, status) or base.kind,
        message=message,
        code=etype,
        type=etype,
        retry_after=base.retry_after,
    )


_Strict = Callable[[msgspec.json.Decoder[Any], bytes], Any]


#: Input, output, cache read, cache creation: each a safe count, or None when not sent.
_Counts = tuple[int | None, int | None, int | None, int | None]


def _counts(u: s.Usage) -> _Counts:
    return (
        count(u.input_tokens),
        count(u.output_tokens),
        count(u.cache_read_input_tokens),
        count(u.cache_creation_input_tokens),
    )


def _usage(c: _Counts) -> Usage:
    # Anthropic's input_tokens leaves out the cache reads and writes; the neutral input is the
    # whole prompt, with the cache reads as its cached part (as OpenAI counts them).
    given, out, read, made = (n or 0 for n in c)
    inp = given + read + made
    return Usage(input_tokens=inp, output_tokens=out, total_tokens=inp + out, cached_tokens=read)


def _merge(old: _Counts | None, new: s.Usage) -> _Counts:
    # message_delta's counts are cumulative and may repeat or leave out message_start's.
    got = _counts(new)
    if old is None:
        return got
    a, b, c, d = (n if n is not None else o for n, o in zip(got, old, strict=True))
    return a, b, c, d


def _ours(kind: Any, tags: frozenset[str]) -> bool:
    # A type that is a list or an object is no type of ours; it must not raise (unhashable).
    return isinstance(kind, str) and kind in tags


def _pick(raw: msgspec.Raw, tags: frozenset[str], decoder: Any, strict: _Strict) -> Any:
    """A nested block or delta decoded by its type, or None when the type is not ours."""
    data = bytes(raw)
    if not data:
        return None
    probe = strict(s.probe_decoder, data)
    if probe is None or not _ours(probe.type, tags):
        return None
    return strict(decoder, data)


class _Thinking:
    """A thinking block as the API wants it back before the turn's tool use: its text and
    signature (or a redacted block's data)."""

    __slots__ = ("data", "pieces", "signature")

    def __init__(self, block: s.ThinkingBlock | s.RedactedThinkingBlock) -> None:
        self.pieces: list[str] = []
        self.signature: str | None = None
        self.data: str | None = None
        if isinstance(block, s.ThinkingBlock):
            if block.thinking:
                self.pieces.append(block.thinking)
            self.signature = block.signature or None
        else:
            self.data = block.data if isinstance(block.data, str) else ""

    def block(self) -> dict[str, Any] | None:
        if self.data is not None:
            return {"type": "redacted_thinking", "data": self.data} if self.data else None
        if not self.signature:
            return None  # unsigned: the API would refuse it back
        return {"type": "thinking", "thinking": "".join(self.pieces), "signature": self.signature}


def _kept(thinking: list[_Thinking]) -> dict[str, Any] | None:
    blocks = [b for t in thinking if (b := t.block()) is not None]
    return provider_data(WIRE, {"thinking": blocks}) if blocks else None


class _Tool:
    __slots__ = ("answer", "id", "index", "input", "name", "pieces")

    def __init__(self, index: int, block: s.ToolUseBlock, answer: bool) -> None:
        self.index = index
        self.id = block.id
        self.name = block.name
        self.input = bytes(block.input).decode() or None
        self.pieces: list[str] = []
        self.answer = answer

    @property
    def arguments(self) -> str:
        return "".join(self.pieces) if self.pieces else (self.input or "")


class MessagesParser:
    """One response's parser (see :class:`llmplug.StreamParser`)."""

    __slots__ = (
        "_answer",
        "_blocks",
        "_call",
        "_id",
        "_model",
        "_reasoning",
        "_stop",
        "_text",
        "_thinking",
        "_tools",
        "_usage",
        "done",
    )

    #: The core frames the bytes as SSE for this parser (the contract's ``framing``).
    framing = "sse"

    def __init__(self, call: Call) -> None:
        self._call = call
        self._answer = answer_tool_name(call)
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._tools: list[_Tool] = []
        self._blocks: dict[int, _Tool] = {}  # content block index -> its tool call
        self._thinking: dict[int, _Thinking] = {}  # content block index -> its thinking
        self._stop: str | None = None
        self._usage: _Counts | None = None
        self._model: str | None = None
        self._id: str | None = None
        self.done = False

    # -- errors --------------------------------------------------------------------------------

    def _strict_event(self, decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
        return decode_event(decoder, data, self._call, self.result)

    def _strict_body(self, decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
        return decode_body(decoder, data, self._call, "Anthropic Messages")

    def _error_fields(self, err: s.Error | None) -> dict[str, Any]:
        etype = err.type if err is not None and isinstance(err.type, str) else None
        status = ERROR_STATUS.get(etype or "")
        return {
            "provider": self._call.provider,
            "model": self._call.model,
            "status": status,
            "code": etype,
            "type": etype,
            "kind": error_kind(etype, text_of(err.message if err else None), status),
        }

    # -- streams -------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            ev = s.event_decoder.decode(event.data)
        except JSON_ERRORS:
            ev = self._slow(event.data, event.event)
            if ev is None:
                return []  # a type we skip
        if isinstance(ev, s.BlockDelta):
            d = ev.delta
            if isinstance(d, s.TextDelta):
                if d.text:
                    self._text.append(d.text)
                    return [TextDelta(d.text)]
                return []
            if isinstance(d, s.JsonDelta):
                return self._arguments(ev.index, d.partial_json)
            if isinstance(d, s.ThinkingDelta) and d.thinking:
                self._reasoning.append(d.thinking)
                if (t := self._thinking.get(ev.index)) is not None:
                    t.pieces.append(d.thinking)
                return [ReasoningDelta(d.thinking)]
            if isinstance(d, s.SignatureDelta) and (t := self._thinking.get(ev.index)):
                t.signature = (t.signature or "") + d.signature  # kept as provider data
            return []
        if isinstance(ev, s.BlockStart):
            return self._start(ev.index, ev.content_block)
        if isinstance(ev, s.BlockStop):
            return self._stop_block(ev.index)
        if isinstance(ev, s.MessageStart):
            m = ev.message
            if m is not None:
                self._model = m.model or self._model
                self._id = m.id or self._id
                if m.usage is not None:
                    self._usage = _merge(self._usage, m.usage)
            return []
        if isinstance(ev, s.MessageDelta):
            if ev.delta is not None and ev.delta.stop_reason is not None:
                self._stop = ev.delta.stop_reason
            if ev.usage is not None:
                self._usage = _merge(self._usage, ev.usage)
            return []
        if isinstance(ev, s.MessageStop):
            self.done = True
            return []
        if isinstance(ev, s.ErrorEvent):
            err = ev.error
            message = text_of(err.message if err else None) or "no message"
            raise StreamError(
                f"error event in the stream: {message}",
                partial=self.result(),
                **self._error_fields(err),
            )
        return []  # ping

    def _slow(self, data: bytes, tag: str) -> Any:
        """An event the one-pass decoder refused: skipped when it (or its block or delta) is of
        a type we do not use, raised (StreamError) when it is bad JSON or one of ours broken."""
        probe = self._strict_event(s.probe_decoder, data)
        if probe is None:
            return None
        kind = tag if probe.type is None else probe.type
        if not _ours(kind, s.EVENT_TAGS):
            return None
        if kind == "content_block_start":
            rs = self._strict_event(s.raw_start_decoder, data)
            block = _pick(rs.content_block, s.BLOCK_TAGS, s.block_decoder, self._strict_event)
            return None if block is None else s.BlockStart(index=rs.index, content_block=block)
        if kind == "content_block_delta":
            rd = self._strict_event(s.raw_delta_decoder, data)
            delta = _pick(rd.delta, s.DELTA_TAGS, s.delta_decoder, self._strict_event)
            return None if delta is None else s.BlockDelta(index=rd.index, delta=delta)
        return self._strict_event(s.event_decoders[kind], data)

    def _start(self, index: int, block: s.Block | None) -> list[StreamEvent]:
        if isinstance(block, s.TextBlock):
            if block.text:
                self._text.append(block.text)
                return [TextDelta(block.text)]
            return []
        if isinstance(block, s.ThinkingBlock | s.RedactedThinkingBlock):
            self._thinking[index] = _Thinking(block)
            if isinstance(block, s.ThinkingBlock) and block.thinking:
                self._reasoning.append(block.thinking)
                return [ReasoningDelta(block.thinking)]
            return []
        if isinstance(block, s.ToolUseBlock):
            answer = self._answer is not None and block.name == self._answer
            calls = sum(1 for t in self._tools if not t.answer)
            tool = self._blocks[index] = _Tool(calls, block, answer)
            self._tools.append(tool)
            if answer:
                return []
            return [ToolCallDelta(index=tool.index, id=tool.id, name=tool.name)]
        return []

    def _arguments(self, index: int, piece: str) -> list[StreamEvent]:
        tool = self._blocks.get(index)
        if tool is None or not piece:
            return []
        tool.pieces.append(piece)
        if tool.answer:
            return [TextDelta(piece)]
        return [ToolCallDelta(index=tool.index, arguments=piece)]

    def _stop_block(self, index: int) -> list[StreamEvent]:
        # A call sent whole in its start event, without deltas: its input is its arguments.
        tool = self._blocks.get(index)
        if tool is None or tool.pieces or not tool.input:
            return []
        return self._arguments(index, tool.input)

    def result(self) -> Completion:
        answer = next((t for t in self._tools if t.answer), None)
        return self._completion(
            "".join(self._text) if answer is None else answer.arguments,
            [t for t in self._tools if not t.answer],
            "".join(self._reasoning) or None,
            self._stop,
            self._usage,
            self._model,
            None,
            self._id,
            _kept([self._thinking[i] for i in sorted(self._thinking)]),
        )

    def _completion(
        self,
        text: str,
        tools: list[_Tool],
        reasoning: str | None,
        stop: str | None,
        usage: _Counts | None,
        model: str | None,
        raw: bytes | None,
        response_id: str | None,
        kept: dict[str, Any] | None,
    ) -> Completion:
        calls = [
            ToolCall(id=t.id or f"call_{t.index}", name=t.name or "", arguments=t.arguments)
            for t in tools
        ]
        finish = _FINISH.get(stop, stop) if stop is not None else None
        if finish == "tool_calls" and not calls:
            finish = "stop"  # only the typed-output tool was called: that is the answer
        return Completion(
            text=text,
            tool_calls=calls,
            reasoning=reasoning,
            finish_reason=finish,
            usage=_usage(usage) if usage is not None else None,
            model=model,
            raw=raw,
            response_id=response_id,
            provider_data=kept,
        )

    # -- whole bodies --------------------------------------------------------------------------

    def parse_body(self, body: bytes) -> Completion:
        b: s.KnownBody | s.Body
        try:
            b = s.known_body_decoder.decode(body)
        except JSON_ERRORS:  # a block type we skip, or broken: block by block, errors raised
            b = self._strict_body(s.body_decoder, body)
        if b.type == "error" or (b.error is not None and b.content is None):
            raise ResponseError(
                f"error in a 200 reply: {text_of(b.error.message if b.error else None)}",
                **{**self._error_fields(b.error), "status": 200},
            )
        text: list[str] = []
        reasoning: list[str] = []
        tools: list[_Tool] = []
        thinking: list[_Thinking] = []
        answer: _Tool | None = None
        for entry in b.content or ():
            block = (
                _pick(entry, s.BLOCK_TAGS, s.block_decoder, self._strict_body)
                if isinstance(entry, msgspec.Raw)
                else entry
            )
            if isinstance(block, s.TextBlock):
                text.append(block.text)
            elif isinstance(block, s.ThinkingBlock | s.RedactedThinkingBlock):
                thinking.append(_Thinking(block))
                if isinstance(block, s.ThinkingBlock):
                    reasoning.append(block.thinking)
            elif isinstance(block, s.ToolUseBlock):
                is_answer = self._answer is not None and block.name == self._answer
                tool = _Tool(len(tools), block, is_answer)
                if is_answer:
                    answer = answer or tool
                else:
                    tools.append(tool)
        return self._completion(
            "".join(text) if answer is None else answer.arguments,
            tools,
            "".join(reasoning) or None,
            b.stop_reason,
            _counts(b.usage) if b.usage is not None else None,
            b.model,
            body,
            b.id,
            _kept(thinking),
        )

    # -- errors and rate limits -----------------------------------------------------------------

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ErrorInfo:
        """An error response by its Anthropic error type (see :func:`classify_error`)."""
        return classify_error(status, headers, body)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        """The ``anthropic-ratelimit-*`` headers of a response (see :func:`rate_limits`)."""
        return rate_limits(headers)


def _seconds_until(v: str | None, now: float | None) -> float | None:
    if v is None:
        return None
    from datetime import datetime  # only when a response has these headers

    try:
        when = datetime.fromisoformat(v.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    base = datetime.now(when.tzinfo).timestamp() if now is None else now
    try:
        left = when.timestamp() - base
    except (OverflowError, ValueError):  # a year the platform's clock cannot hold
        return None
    return seconds(max(0.0, left))


def rate_limits(headers: Mapping[str, str], now: float | None = None) -> RateLimits | None:
    """Read ``anthropic-ratelimit-{requests,tokens}-{remaining,reset}`` (``tokens`` is the
    tighter of the key's token limits; Anthropic also sends ``input-tokens``/``output-tokens``,
    used when ``tokens`` is missing). None when the response has none of them."""
    p = "anthropic-ratelimit-"
    if not any(name.lower().startswith(p) for name in headers):
        # No server but Anthropic's sends them: one pass over the names, not six lookups
        # (each of which walks every header of an httpx2 response).
        return None
    tok = "tokens" if f"{p}tokens-remaining" in headers else "input-tokens"
    limits = RateLimits(
        remaining_requests=count(headers.get(f"{p}requests-remaining")),
        remaining_tokens=count(headers.get(f"{p}{tok}-remaining")),
        reset_requests=_seconds_until(headers.get(f"{p}requests-reset"), now),
        reset_tokens=_seconds_until(headers.get(f"{p}{tok}-reset"), now),
    )
    return None if limits == RateLimits() else limits
