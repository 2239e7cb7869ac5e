"""Parsing Responses API answers: whole bodies, and streams dispatched on each event's ``type``."""

from __future__ import annotations

from typing import Any

import msgspec

from llmplug import (
    Call,
    Completion,
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
from llmplug.wire import decode_body, decode_event, text_of

__all__ = ["ResponsesParser"]


class _Part(msgspec.Struct):
    type: str = ""
    text: str | None = None
    refusal: str | None = None


class _Item(msgspec.Struct):
    # One loose shape for every output item type: hosted tools add types we skip.
    type: str = ""
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    content: list[_Part] | None = None
    summary: list[_Part] | None = None


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    input_tokens_details: _Details | None = None
    output_tokens_details: _Details | None = None


class _Error(msgspec.Struct):
    code: Any = None
    message: Any = None
    type: Any = None


class _Incomplete(msgspec.Struct):
    reason: str | None = None


class _Response(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    status: str | None = None
    output: list[_Item] | None = None
    usage: _Usage | None = None
    error: _Error | None = None
    incomplete_details: _Incomplete | None = None


class _Event(msgspec.Struct):
    type: str = ""
    delta: str | None = None
    item_id: str | None = None
    output_index: int | None = None
    item: _Item | None = None
    arguments: str | None = None
    response: _Response | None = None
    code: Any = None
    message: Any = None


_event_decoder = msgspec.json.Decoder(_Event)
_body_decoder = msgspec.json.Decoder(_Response)

# Responses says why it stopped with status and incomplete_details; callers get the same
# finish_reason vocabulary as on the Chat wire, so decorator code cannot tell them apart.
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _usage(u: _Usage) -> Usage:
    inp, out = u.input_tokens or 0, u.output_tokens or 0
    di, do = u.input_tokens_details, u.output_tokens_details
    return Usage(
        input_tokens=inp,
        output_tokens=out,
        total_tokens=u.total_tokens if u.total_tokens is not None else inp + out,
        cached_tokens=(di.cached_tokens or 0) if di else 0,
        reasoning_tokens=(do.reasoning_tokens or 0) if do else 0,
    )


def _finish(status: str | None, incomplete: _Incomplete | None, has_calls: bool) -> str | None:
    if status == "incomplete":
        reason = incomplete.reason if incomplete else None
        return _INCOMPLETE.get(reason or "", reason or "incomplete")
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    return status


class ResponsesParser:
    """One response's parser (see :class:`llmplug.StreamParser`)."""

    __slots__ = (
        "_call",
        "_calls",
        "_final",
        "_reasoning",
        "_refusal",
        "_text",
        "done",
    )

    def __init__(self, call: Call) -> None:
        self._call = call
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        # item id -> [index, call_id, name, argument pieces, final arguments or None]
        self._calls: dict[str, list[Any]] = {}
        self._final: _Response | None = None
        self.done = False

    # -- errors --------------------------------------------------------------------------------

    def _stream_error(self, what: str, code: Any, message: Any, etype: Any = None) -> StreamError:
        return StreamError(
            f"{what}: {text_of(message) or 'no message'}",
            partial=self.result(),
            provider=self._call.provider,
            model=self._call.model,
            code=code if isinstance(code, (str, int)) else None,
            type=etype if isinstance(etype, str) else None,
        )

    # -- streams -------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        ev = decode_event(_event_decoder, event.data, self._call, self.result)
        t = ev.type or event.event
        if t == "response.output_text.delta":
            if ev.delta:
                self._text.append(ev.delta)
                return [TextDelta(ev.delta)]
            return []
        if t in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            if ev.delta:
                self._reasoning.append(ev.delta)
                return [ReasoningDelta(ev.delta)]
            return []
        if t == "response.function_call_arguments.delta":
            return self._arguments(ev)
        if t == "response.refusal.delta":
            if ev.delta:
                self._refusal.append(ev.delta)
            return []
        if t in ("response.output_item.added", "response.output_item.done"):
            return self._item(ev.item, added=t.endswith("added"))
        if t == "response.function_call_arguments.done":
            slot = self._calls.get(ev.item_id or "")
            if slot is not None and ev.arguments is not None:
                slot[4] = ev.arguments
            return []
        if t == "response.completed":
            self._final = ev.response
            self.done = True
            return []
        if t == "response.failed":
            err = (ev.response.error if ev.response else None) or _Error()
            self._final = ev.response
            raise self._stream_error("the response failed", err.code, err.message, err.type)
        if t == "response.incomplete":
            # Cut short (max_output_tokens, content_filter): still an answer, with the finish
            # reason a whole body and the Chat wire give, not a broken stream.
            self._final = ev.response or _Response(status="incomplete")
            self.done = True
            return []
        if t == "error":
            raise self._stream_error("error event in the stream", ev.code, ev.message)
        return []  # lifecycle events, and the many types hosted tools add

    def _item(self, item: _Item | None, *, added: bool) -> list[StreamEvent]:
        if item is None or item.type != "function_call":
            return []
        key = item.id or item.call_id or str(len(self._calls))
        slot = self._calls.get(key)
        if slot is None:
            slot = self._calls[key] = [len(self._calls), item.call_id, item.name, [], None]
            if added:
                return [ToolCallDelta(index=slot[0], id=item.call_id, name=item.name)]
        if not added and item.arguments is not None:
            slot[4] = item.arguments
        return []

    def _arguments(self, ev: _Event) -> list[StreamEvent]:
        key = ev.item_id or ""
        slot = self._calls.get(key)
        if slot is None:  # a delta before its item: keep it rather than lose it
            slot = self._calls[key] = [len(self._calls), None, None, [], None]
        if not ev.delta:
            return []
        slot[3].append(ev.delta)
        return [ToolCallDelta(index=slot[0], arguments=ev.delta)]

    def result(self) -> Completion:
        final = self._final
        if final is not None and final.output and not (self._text or self._calls):
            # A server that sent only the final response object, no deltas.
            return self._from_response(final, raw=None)
        calls = [
            ToolCall(
                id=s[1] or key,
                name=s[2] or "",
                arguments=s[4] if s[4] is not None else "".join(s[3]),
            )
            for key, s in sorted(self._calls.items(), key=lambda kv: kv[1][0])
        ]
        return Completion(
            text="".join(self._text),
            tool_calls=calls,
            reasoning="".join(self._reasoning) or None,
            finish_reason=_finish(
                final.status if final else None,
                final.incomplete_details if final else None,
                bool(calls),
            ),
            usage=_usage(final.usage) if final and final.usage else None,
            refusal="".join(self._refusal) or None,
            model=final.model if final else None,
        )

    # -- whole bodies --------------------------------------------------------------------------

    def parse_body(self, body: bytes) -> Completion:
        r = decode_body(_body_decoder, body, self._call, "Responses API")
        if r.status == "failed" or (r.error is not None and r.output is None):
            err = r.error or _Error()
            raise ResponseError(
                f"the response failed: {text_of(err.message) or 'no message'}",
                provider=self._call.provider,
                model=self._call.model,
                status=200,
                code=err.code if isinstance(err.code, (str, int)) else None,
            )
        return self._from_response(r, raw=body)

    def _from_response(self, r: _Response, raw: bytes | None) -> Completion:
        text: list[str] = []
        refusal: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        for item in r.output or ():
            if item.type == "message":
                for p in item.content or ():
                    if p.type == "output_text" and p.text:
                        text.append(p.text)
                    elif p.type == "refusal" and p.refusal:
                        refusal.append(p.refusal)
            elif item.type == "function_call":
                calls.append(
                    ToolCall(
                        id=item.call_id or item.id or f"call_{len(calls)}",
                        name=item.name or "",
                        arguments=item.arguments or "",
                    )
                )
            elif item.type == "reasoning":
                parts = [*(item.summary or ()), *(item.content or ())]
                reasoning.extend(p.text for p in parts if p.text)
        return Completion(
            text="".join(text),
            tool_calls=calls,
            reasoning="\n\n".join(reasoning) or None,
            finish_reason=_finish(r.status, r.incomplete_details, bool(calls)),
            usage=_usage(r.usage) if r.usage else None,
            refusal="".join(refusal) or None,
            model=r.model,
            raw=raw,
        )
