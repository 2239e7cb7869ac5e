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
    Usage,
)
from llmplug.wire import decode_body, decode_event, text_of

from ._calls import Calls

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
    name: str | None = None
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
        "_whole",
        "done",
    )

    def __init__(self, call: Call) -> None:
        self._call = call
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._calls = Calls()
        self._final: _Response | None = None
        self._whole = False  # the final response is the whole answer: nothing was streamed
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
            return self._calls.delta(ev.item_id, ev.output_index, ev.delta)
        if t == "response.refusal.delta":
            if ev.delta:
                self._refusal.append(ev.delta)
            return []
        if t in ("response.output_item.added", "response.output_item.done"):
            return self._item(ev.item, ev.output_index)
        if t == "response.function_call_arguments.done":
            return self._calls.done(ev.item_id, ev.output_index, ev.name, ev.arguments)
        if t == "response.completed":
            self.done = True
            return self._end(ev.response)
        if t == "response.failed":
            err = (ev.response.error if ev.response else None) or _Error()
            self._end(ev.response)
            raise self._stream_error("the response failed", err.code, err.message, err.type)
        if t == "response.incomplete":
            # Cut short (max_output_tokens, content_filter): still an answer, with the finish
            # reason a whole body and the Chat wire give, not a broken stream.
            self.done = True
            return self._end(ev.response or _Response(status="incomplete"))
        if t == "error":
            raise self._stream_error("error event in the stream", ev.code, ev.message)
        return []  # lifecycle events, and the many types hosted tools add

    def _item(self, item: _Item | None, at: int | None) -> list[StreamEvent]:
        if item is None or item.type != "function_call":
            return []
        return self._calls.item(item.id, item.call_id, item.name, item.arguments, at)

    def _end(self, response: _Response | None) -> list[StreamEvent]:
        self._final = response
        if response is None or not response.output:
            return []
        if not (self._text or self._calls):
            self._whole = True  # a server that sent only the final response object
            return []
        # Its output may hold what the events did not (a call's name and id, when its argument
        # deltas came and its item never did).
        out: list[StreamEvent] = []
        for at, item in enumerate(response.output):
            out += self._item(item, at)
        return out

    def result(self) -> Completion:
        final = self._final
        if final is not None and self._whole:
            return self._from_response(final, raw=None)
        calls = self._calls.result()
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
