"""Wire plugins of the tests' own, written as an outsider would from docs/plugins.md: an
Ollama-style NDJSON chat wire, and its variants (a whole-body wire, one reading its own
rate-limit headers)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from llmplug import (
    Call,
    Completion,
    HTTPRequest,
    RateLimits,
    SSEEvent,
    StreamEvent,
    TextDelta,
    Usage,
    hookimpl,
)
from llmplug.wire import decode_body, decode_event

OLLAMA = "ollama-chat"


class _Message(msgspec.Struct):
    content: str = ""


class _Chunk(msgspec.Struct):
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0
    eval_count: int = 0


_chunk = msgspec.json.Decoder(_Chunk)


def ndjson(*chunks: dict[str, object]) -> list[bytes]:
    """Ollama's stream: one JSON document per line."""
    return [msgspec.json.encode(c) + b"\n" for c in chunks]


class OllamaParser:
    """Ollama's ``/api/chat`` reply: NDJSON chunks ``{message: {content}, done}``; the last
    one, ``done: true``, has the token counts."""

    framing = "ndjson"

    def __init__(self, call: Call) -> None:
        self.call = call
        self.done = False
        self._text: list[str] = []
        self._usage: Usage | None = None
        self._reason: str | None = None

    def _take(self, chunk: _Chunk) -> list[StreamEvent]:
        if chunk.done:
            self.done = True
            self._reason = chunk.done_reason or "stop"
            tokens = chunk.prompt_eval_count + chunk.eval_count
            self._usage = Usage(chunk.prompt_eval_count, chunk.eval_count, tokens)
        text = chunk.message.content if chunk.message else ""
        if not text:
            return []
        self._text.append(text)
        return [TextDelta(text)]

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        return self._take(decode_event(_chunk, event.data, self.call, self.result))

    def result(self) -> Completion:
        return Completion(text="".join(self._text), finish_reason=self._reason, usage=self._usage)

    def parse_body(self, body: bytes) -> Completion:
        self._take(decode_body(_chunk, body, self.call, "Ollama chat"))
        return self.result()


class Ollama:
    """The wire ``ollama-chat``: ``POST {base_url}/api/chat``."""

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != OLLAMA:
            return None
        body = {
            "model": call.model,
            "messages": [{"role": m.role, "content": m.text} for m in call.messages],
            "stream": call.stream,
        }
        return HTTPRequest(
            url=call.base_url + "/api/chat",
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            content=msgspec.json.encode(body),
        )

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        return OllamaParser(call) if wire == OLLAMA else None


class WholeBodyParser(OllamaParser):
    """A wire whose streams are one JSON body whatever the server's content type."""

    framing = "json"


class LimitsParser(OllamaParser):
    """A provider stating its limits in headers of its own (``acme-ratelimit-*``, resets in
    seconds)."""

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimits | None:
        remaining = headers.get("acme-ratelimit-requests-remaining")
        if remaining is None:
            return None
        reset = headers.get("acme-ratelimit-requests-reset")
        return RateLimits(
            remaining_requests=float(remaining),
            reset_requests=float(reset) if reset is not None else None,
        )


class Variant(Ollama):
    """The Ollama wire under another name, with another parser class."""

    def __init__(self, wire: str, parser: type[OllamaParser]) -> None:
        self.wire = wire
        self.parser = parser

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        return super().build_request(OLLAMA, call, key) if wire == self.wire else None

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        return self.parser(call) if wire == self.wire else None
