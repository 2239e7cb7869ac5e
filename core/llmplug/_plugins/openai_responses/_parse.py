"""Parsing Responses API answers: whole bodies, and streams dispatched on each event's ``type``."""

from __future__ import annotations

from contextlib import suppress
from typing import Any, assert_type

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
from llmplug._plugins._openai import Error, OpenAIParser, stream_error_status, usage
from llmplug.wire import JSON_ERRORS, provider_data, text_of

from . import _shapes as s
from ._calls import Calls

__all__ = ["ResponsesParser", "kept_reasoning"]

WIRE = "openai-responses"


def kept_reasoning(
    item: s.ReasoningItem | s.AnyReasoning, strict: s.Strict
) -> dict[str, Any] | None:
    """A reasoning item as the next request must send it back (``store: false`` with
    ``include: ["reasoning.encrypted_content"]``), or None when it has no encrypted content
    (a stored response's items are found by id, server side)."""
    if not item.encrypted_content:
        return None
    summary = []
    for p in item.summary or ():
        part = s.reasoning_parts.decode(p, strict) if isinstance(p, msgspec.Raw) else p
        if isinstance(part, s.SummaryText):
            summary.append({"type": "summary_text", "text": part.text})
    out: dict[str, Any] = {"type": "reasoning", "summary": summary}
    if item.id:
        out["id"] = item.id
    out["encrypted_content"] = item.encrypted_content
    return out


def _kept(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return provider_data(WIRE, {"reasoning": items}) if items else None


# Responses says why it stopped with status and incomplete_details; callers get the same
# finish_reason vocabulary as on the Chat wire, so decorator code cannot tell them apart.
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _usage(u: s.Usage) -> Usage:
    return usage(
        u.input_tokens,
        u.output_tokens,
        u.total_tokens,
        u.input_tokens_details,
        u.output_tokens_details,
    )


def _finish(status: str | None, incomplete: s.Incomplete | None, has_calls: bool) -> str | None:
    if status == "incomplete":
        reason = incomplete.reason if incomplete else None
        return _INCOMPLETE.get(reason or "", reason or "incomplete")
    if status == "completed":
        return "tool_calls" if has_calls else "stop"
    return status


class ResponsesParser(OpenAIParser):
    """One response's parser (see :class:`llmplug.StreamParser`)."""

    api = "Responses API"

    __slots__ = ("_answer", "_calls", "_final", "_kept")

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._calls = Calls()
        self._final: s.Response | None = None
        # The final response read whole, when it is the whole answer: nothing was streamed.
        self._answer: Completion | None = None
        # Reasoning items with encrypted content, by id: the turn's provider data.
        self._kept: dict[str, dict[str, Any]] = {}

    # -- errors --------------------------------------------------------------------------------

    def _stream_error(self, what: str, code: Any, message: Any, etype: Any = None) -> StreamError:
        return StreamError(
            f"{what}: {text_of(message) or 'no message'}",
            partial=self.result(),
            provider=self._call.provider,
            model=self._call.model,
            status=stream_error_status(code, etype),
            code=code if isinstance(code, (str, int)) else None,
            type=etype if isinstance(etype, str) else None,
        )

    # -- streams -------------------------------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        ev = s.events.fast(event.data, event.event)
        if ev is None:
            ev = s.events.pick(event.data, self._strict_event, event.event)
            if ev is None:
                return []  # lifecycle events, and the many types hosted tools add
        # The hot path, a text delta, is the first test: one isinstance.
        if isinstance(ev, s.TextDelta):
            if ev.delta:
                self._text.append(ev.delta)
                return [TextDelta(ev.delta)]
            return []
        if isinstance(ev, s.ReasoningSummaryDelta | s.ReasoningTextDelta):
            if ev.delta:
                self._reasoning.append(ev.delta)
                return [ReasoningDelta(ev.delta)]
            return []
        if isinstance(ev, s.ArgumentsDelta):
            return self._calls.delta(ev.item_id, ev.output_index, ev.delta)
        if isinstance(ev, s.RefusalDelta):
            if ev.delta:
                self._refusal.append(ev.delta)
            return []
        if isinstance(ev, s.ItemAdded | s.ItemDone):
            # Most items are messages and reasoning, whose text came as deltas.
            item = s.stream_items.pick(ev.item, self._strict_event) if ev.item else None
            return self._function_call(item, ev.output_index)
        if isinstance(ev, s.ArgumentsDone):
            return self._calls.done(ev.item_id, ev.output_index, ev.name, ev.arguments)
        if isinstance(ev, s.Completed):
            self.done = True
            return self._end(ev.response)
        if isinstance(ev, s.Incompleted):
            # Cut short (max_output_tokens, content_filter): still an answer, with the finish
            # reason a whole body and the Chat wire give, not a broken stream.
            self.done = True
            return self._end(ev.response or s.Response(status="incomplete"))
        if isinstance(ev, s.Failed):
            err = (ev.response.error if ev.response else None) or Error()
            with suppress(StreamError):  # a broken item must not hide why it failed
                self._end(ev.response)
            raise self._stream_error("the response failed", err.code, err.message, err.type)
        assert_type(ev, s.ErrorEvent)
        raise self._stream_error("error event in the stream", ev.code, ev.message)

    def _function_call(
        self, item: s.FunctionCall | s.ReasoningItem | None, at: int | None
    ) -> list[StreamEvent]:
        if item is None:
            return []
        if isinstance(item, s.ReasoningItem):
            kept = kept_reasoning(item, self._strict_event)
            if kept is not None:
                self._kept[item.id or str(at)] = kept
            return []
        return self._calls.item(item.id, item.call_id, item.name, item.arguments, at)

    def _end(self, response: s.Response | None) -> list[StreamEvent]:
        self._final = response
        if response is None or not response.output:
            return []
        if not (self._text or self._calls):
            # A server that sent only the final response object.
            self._answer = self._completion(response, self._strict_event, raw=None)
            return []
        # Its output may hold what the events did not (a call's name and id, when its argument
        # deltas came and its item never did).
        out: list[StreamEvent] = []
        for at, raw in enumerate(response.output):
            out += self._function_call(s.stream_items.pick(raw, self._strict_event), at)
        return out

    def result(self) -> Completion:
        if self._answer is not None:
            return self._answer
        final = self._final
        calls = self._calls.result()
        c = self._streamed(
            calls,
            _finish(
                final.status if final else None,
                final.incomplete_details if final else None,
                bool(calls),
            ),
            _usage(final.usage) if final and final.usage else None,
            final.model if final else None,
            final.id if final else None,
        )
        if self._kept:
            c = msgspec.structs.replace(c, provider_data=_kept(list(self._kept.values())))
        return c

    # -- whole bodies --------------------------------------------------------------------------

    def parse_body(self, body: bytes) -> Completion:
        r: s.KnownResponse | s.Response
        try:
            r = s.known_body_decoder.decode(body)
        except JSON_ERRORS:  # a type we skip, or broken: item by item, errors raised
            r = self._strict_body(s.body_decoder, body)
        if r.status == "failed" or (r.error is not None and r.output is None):
            err = r.error or Error()
            raise ResponseError(
                f"the response failed: {text_of(err.message) or 'no message'}",
                provider=self._call.provider,
                model=self._call.model,
                status=200,
                code=err.code if isinstance(err.code, (str, int)) else None,
            )
        return self._completion(r, self._strict_body, raw=body)

    @staticmethod
    def _completion(
        r: s.KnownResponse | s.Response, strict: s.Strict, raw: bytes | None
    ) -> Completion:
        text: list[str] = []
        refusal: list[str] = []
        reasoning: list[str] = []
        calls: list[ToolCall] = []
        kept: list[dict[str, Any]] = []
        for entry in r.output or ():
            item = s.items.decode(entry, strict) if isinstance(entry, msgspec.Raw) else entry
            if isinstance(item, s.AnyMessage):
                for p in item.content or ():
                    part = s.message_parts.decode(p, strict) if isinstance(p, msgspec.Raw) else p
                    if isinstance(part, s.OutputText) and part.text:
                        text.append(part.text)
                    elif isinstance(part, s.Refusal) and part.refusal:
                        refusal.append(part.refusal)
            elif isinstance(item, s.FunctionCall):
                calls.append(
                    ToolCall(
                        id=item.call_id or item.id or f"call_{len(calls)}",
                        name=item.name or "",
                        arguments=item.arguments or "",
                    )
                )
            elif isinstance(item, s.AnyReasoning):
                if (k := kept_reasoning(item, strict)) is not None:
                    kept.append(k)
                for p in (*(item.summary or ()), *(item.content or ())):
                    rpart = s.reasoning_parts.decode(p, strict) if isinstance(p, msgspec.Raw) else p
                    if rpart is not None and rpart.text:
                        reasoning.append(rpart.text)
        return Completion(
            text="".join(text),
            tool_calls=calls,
            reasoning="\n\n".join(reasoning) or None,
            finish_reason=_finish(r.status, r.incomplete_details, bool(calls)),
            usage=_usage(r.usage) if r.usage else None,
            refusal="".join(refusal) or None,
            model=r.model,
            raw=raw,
            response_id=r.id,
            provider_data=_kept(kept),
        )
