"""Parsing Chat Completions answers: whole bodies and SSE chunks, into neutral events."""

from __future__ import annotations

from collections.abc import Callable
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
from llmplug._plugins._openai import (
    NO_COUNT,
    Error,
    OpenAIParser,
    RawCount,
    TokenDetails,
    stream_error_status,
    usage,
)
from llmplug.wire import JSON_ERRORS, decode_body, decode_event, text_of

__all__ = ["ChatParser"]


class _Usage(msgspec.Struct):
    prompt_tokens: RawCount = NO_COUNT
    completion_tokens: RawCount = NO_COUNT
    total_tokens: RawCount = NO_COUNT
    prompt_tokens_details: TokenDetails | None = None
    completion_tokens_details: TokenDetails | None = None


class _Fn(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCallPiece(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Fn | None = None


class _Part(msgspec.Struct):
    # Content as a list of typed parts (Mistral's reasoning models): a part's type is read
    # first, its other fields only for the types we use, so a part type we skip never fails
    # the reply, whatever those fields hold.
    type: Any = None
    text: msgspec.Raw = msgspec.Raw()
    thinking: msgspec.Raw = msgspec.Raw()


_Content = str | list[_Part] | None
_text_decoder = msgspec.json.Decoder(str | None)
_parts_decoder = msgspec.json.Decoder(list[_Part])
_Strict = Callable[[msgspec.json.Decoder[Any], bytes], Any]


def _parts(content: list[_Part], strict: _Strict) -> tuple[str, str]:
    """The text and the reasoning (``thinking`` parts) of a content list; ``strict`` decodes
    with the caller's error policy."""
    text: list[str] = []
    reasoning: list[str] = []
    for part in content:
        if part.type == "text" and part.text:
            text.append(strict(_text_decoder, bytes(part.text)) or "")
        elif part.type == "thinking" and part.thinking:
            for inner in strict(_parts_decoder, bytes(part.thinking)):
                if inner.type == "text" and inner.text:
                    reasoning.append(strict(_text_decoder, bytes(inner.text)) or "")
    return "".join(text), "".join(reasoning)


class _Message(msgspec.Struct):
    # A body's message, and a stream chunk's delta (a piece of one): the same fields.
    content: _Content = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCallPiece] | None = None


class _StreamChoice(msgspec.Struct):
    index: int = 0
    delta: _Message | None = None
    finish_reason: str | None = None


class _Groq(msgspec.Struct):
    usage: _Usage | None = None


class _Chunk(msgspec.Struct):
    id: str | None = None
    choices: list[_StreamChoice] | None = None
    usage: _Usage | None = None
    model: str | None = None
    error: Error | None = None
    x_groq: _Groq | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    message: _Message | None = None
    finish_reason: str | None = None


class _Body(msgspec.Struct):
    id: str | None = None
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    model: str | None = None
    error: Error | None = None


_chunk_decoder = msgspec.json.Decoder(_Chunk)
_decode_chunk = _chunk_decoder.decode
_body_decoder = msgspec.json.Decoder(_Body)


def _usage(u: _Usage) -> Usage:
    return usage(
        u.prompt_tokens,
        u.completion_tokens,
        u.total_tokens,
        u.prompt_tokens_details,
        u.completion_tokens_details,
    )


class ChatParser(OpenAIParser):
    """One response's parser (see :class:`llmplug.StreamParser`)."""

    api = "Chat Completions"

    __slots__ = ("_finish", "_id", "_last", "_model", "_tools", "_usage")

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        # index -> [id, name, argument pieces]
        self._tools: dict[int, list[Any]] = {}
        self._last: int | None = None  # the call the latest fragment went to
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._model: str | None = None
        self._id: str | None = None

    def _error(self, err: Error) -> StreamError:
        message = text_of(err.message)
        return StreamError(
            f"error event in the stream: {message}",
            partial=self.result(),
            provider=self._call.provider,
            model=self._call.model,
            status=stream_error_status(err.code, err.type),
            code=err.code if isinstance(err.code, (str, int)) else None,
            type=err.type if isinstance(err.type, str) else None,
        )

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        data = event.data
        if data[:1] == b"[" and data.strip() == b"[DONE]":
            self.done = True
            return []
        try:
            chunk = _decode_chunk(data)
        except JSON_ERRORS:  # decoded again by the helper only to raise its documented error
            chunk = decode_event(_chunk_decoder, data, self._call, self.result)
        if chunk.error is not None:
            raise self._error(chunk.error)
        if chunk.model and self._model is None:
            self._model = chunk.model
        if chunk.id and self._id is None:
            self._id = chunk.id
        usage = chunk.usage or (chunk.x_groq.usage if chunk.x_groq else None)
        if usage is not None:
            # Some providers repeat usage on several chunks; the latest non-null one wins.
            self._usage = _usage(usage)
        out: list[StreamEvent] = []
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
            d = choice.delta
            if d is None:
                continue
            reasoning = d.reasoning_content or d.reasoning
            if reasoning:
                self._reasoning.append(reasoning)
                out.append(ReasoningDelta(reasoning))
            content = d.content
            if content:
                if isinstance(content, str):
                    self._text.append(content)
                    out.append(TextDelta(content))
                else:
                    out += self._content_parts(content)
            if d.refusal:
                self._refusal.append(d.refusal)
            if d.tool_calls:
                for piece in d.tool_calls:
                    out.append(self._tool_piece(piece))
        return out

    def _content_parts(self, content: list[_Part]) -> list[StreamEvent]:
        text, reasoning = _parts(content, self._strict_event)
        out: list[StreamEvent] = []
        if reasoning:
            self._reasoning.append(reasoning)
            out.append(ReasoningDelta(reasoning))
        if text:
            self._text.append(text)
            out.append(TextDelta(text))
        return out

    def _tool_piece(self, piece: _ToolCallPiece) -> ToolCallDelta:
        index = piece.index
        if index is None:
            index = self._index_of(piece.id)
        self._last = index
        slot = self._tools.get(index)
        fn = piece.function
        name = fn.name if fn else None
        args = (fn.arguments if fn else None) or ""
        if slot is None:
            slot = self._tools[index] = [piece.id, name, []]
        else:
            # Some servers repeat id/name on later fragments; keep the first.
            slot[0] = slot[0] or piece.id
            slot[1] = slot[1] or name
        if args:
            slot[2].append(args)
        return ToolCallDelta(index=index, id=piece.id, name=name, arguments=args)

    def _index_of(self, call_id: str | None) -> int:
        # Fragments without an index (Gemini's OpenAI layer sends none) cannot all be call 0:
        # an id not seen before starts a new call, no id continues the latest one.
        if call_id is None:
            if self._last is not None:
                return self._last
        else:
            for index, slot in self._tools.items():
                if slot[0] == call_id:
                    return index
        return max(self._tools, default=-1) + 1

    def result(self) -> Completion:
        calls = [
            ToolCall(id=s[0] or f"call_{i}", name=s[1] or "", arguments="".join(s[2]))
            for i, s in sorted(self._tools.items())
        ]
        return self._streamed(calls, self._finish, self._usage, self._model, self._id)

    def parse_body(self, body: bytes) -> Completion:
        parsed = decode_body(_body_decoder, body, self._call, self.api)
        if parsed.error is not None:
            err = self._error(parsed.error)
            raise ResponseError(
                err.message.replace("error event in the stream", "error in a 200 reply"),
                provider=err.provider,
                model=err.model,
                status=err.status,
                code=err.code,
                type=err.type,
            )
        if not parsed.choices:
            raise ResponseError(
                f"the reply has no choices: {body[:200]!r}",
                provider=self._call.provider,
                model=self._call.model,
                status=200,
            )
        choice = parsed.choices[0]
        m = choice.message or _Message()
        text, thought = m.content or "", ""
        if not isinstance(text, str):
            text, thought = _parts(text, self._strict_body)
        calls = [
            ToolCall(
                id=tc.id or f"call_{i}",
                name=(tc.function.name if tc.function else None) or "",
                arguments=(tc.function.arguments if tc.function else None) or "",
            )
            for i, tc in enumerate(m.tool_calls or ())
        ]
        return Completion(
            text=text,
            tool_calls=calls,
            reasoning=m.reasoning_content or m.reasoning or thought or None,
            finish_reason=choice.finish_reason,
            usage=_usage(parsed.usage) if parsed.usage else None,
            refusal=m.refusal,
            model=parsed.model,
            raw=body,
            response_id=parsed.id,
        )
