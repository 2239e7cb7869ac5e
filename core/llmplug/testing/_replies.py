"""What a test scripts into LLMTestServer, and what it records about each request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import msgspec

UsageStyle = Literal["include_usage", "always", "finish_chunk", "groq", "none"]
FaultKind = Literal["reset_before_headers", "cut_stream", "stall_after_headers", "never_ending"]
Api = Literal["chat", "responses", "anthropic", "gemini", "other"]

_encode_json = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ToolCallReply:
    """One tool call in a `Reply`.

    `arguments` may be a JSON string (sent as is, even if it is not valid JSON, so tests can feed
    a client broken arguments) or a mapping (JSON-encoded). `id` defaults to ``call_<i>``, `i`
    being the call's position in the reply.
    """

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string that goes on the wire."""
        if isinstance(self.arguments, str):
            return self.arguments
        return _encode_json(self.arguments).decode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """A successful completion, rendered for whichever API the request used, streamed or not.

    - `chunks`: how `text` is split into stream deltas. None: one piece per word (spaces kept, so
      the pieces join to `text`); an int n: n pieces of about equal length; a sequence of strings:
      exactly those deltas (empty strings included), and `text` defaults to their concatenation.
    - `finish_reason` None: "tool_calls" if there are tool calls, "length" if `incomplete_reason` is
      "max_output_tokens", "content_filter" if it is "content_filter", else "stop".
    - `usage` None: a rough count is computed. Given, it is sent as is (Chat names; converted to the
      Responses names for /responses unless it already has ``input_tokens``).
    - `usage_style` (Chat streams): "include_usage" (a final ``choices: []`` chunk, only when the
      request asked with ``stream_options.include_usage``, and ``"usage": null`` on the other
      chunks, as OpenAI does), "always" (that final chunk whatever the request said),
      "finish_chunk" (usage on the chunk carrying finish_reason), "groq" (at ``x_groq.usage`` on
      that chunk), "none" (no usage anywhere, also not in non-stream bodies).
    - `delay`: seconds before the response headers; `chunk_delay`: seconds between stream events
      (0: all events go out in one write, each still its own HTTP chunk; set a small delay for a
      client to see them arrive one by one).
    - `model`: defaults to the request's model. `status` / `incomplete_reason`: the Responses status
      and ``incomplete_details.reason`` (a stream then ends with response.incomplete).
    """

    text: str = ""
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    tool_calls: Sequence[ToolCallReply] = ()
    refusal: str | None = None
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    usage_style: UsageStyle = "include_usage"
    chunks: Sequence[str] | int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunk_delay: float = 0.0
    model: str | None = None
    status: str | None = None
    incomplete_reason: str | None = None

    def __post_init__(self) -> None:
        if self.usage_style not in get_args(UsageStyle):
            raise ValueError(f"unknown usage_style {self.usage_style!r}")
        chunks = self.chunks
        if isinstance(chunks, str):
            raise TypeError("chunks must be a sequence of strings or an int, not a str")
        if chunks is not None and not isinstance(chunks, int):
            joined = "".join(chunks)
            if not self.text:
                object.__setattr__(self, "text", joined)
            elif joined != self.text:
                raise ValueError("chunks must join to text")


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """An API error: ``{"error": {"message", "type", "param", "code"}}`` with HTTP `status`.

    `body` (bytes) replaces that JSON and is sent raw with `content_type` (a proxy's HTML 502, an
    empty body...). `message` None: the status's reason phrase.

    `in_stream_after` (only for streaming requests): answer 200 SSE, send the opening events and
    that many text deltas, then the error in the stream and end the HTTP body cleanly. Chat streams
    get ``data: {"error": {...}}`` (no ``[DONE]``); Responses streams get an ``error`` event
    (``code`` is `code`, or `type` when `code` is None) or, with
    ``responses_event="response.failed"``, a response.failed event whose ``response.error`` is
    ``{code, message}``.
    """

    status: int = 500
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str = "application/json"
    delay: float = 0.0
    in_stream_after: int | None = None
    responses_event: Literal["error", "response.failed"] = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Raw:
    """Bytes sent exactly as given, for malformed or unusual responses.

    Without `chunks` the body goes out with a Content-Length. With `chunks`, each item is written
    and flushed as its own HTTP chunk (empty items are skipped: an empty chunk would end the body),
    `chunk_delay` seconds apart. `close=True` closes the connection after the last byte without the
    chunked terminator (the body is then sent chunked even without `chunks`), so the client sees a
    body truncated at the HTTP layer. str values are UTF-8 encoded. `content_type` None: no header.
    """

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | str = b""
    chunks: Sequence[bytes | str] | None = None
    chunk_delay: float = 0.0
    content_type: str | None = "text/event-stream"
    close: bool = False


@dataclass(frozen=True, slots=True)
class Fault:
    """A transport-level failure.

    - "reset_before_headers": read the request, then reset the TCP connection (RST) unanswered.
    - "cut_stream": 200 SSE, the opening events and `after` text deltas, then close the connection
      without ending the chunked body (the client sees an incomplete body).
    - "stall_after_headers": send the response headers, then nothing until `seconds` pass,
      `release_stalls()` is called, the client disconnects or the server stops. When released (or
      timed out) the response is completed as a normal short answer, streamed or not as requested.
    - "never_ending": 200 SSE, text deltas and ``: keep-alive`` comments every 10 ms until the
      client disconnects or the server stops; after `seconds` the stream is finished properly.
    """

    kind: FaultKind
    after: int = 0
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request as the server received it.

    `headers` has lowercased names; `json` is the decoded body (None if empty or invalid);
    `api_key` comes from ``Authorization: Bearer ...`` (else an ``x-api-key``, ``api-key``
    or ``x-goog-api-key`` header, else a ``key=`` query parameter); `stream` is true when the
    body's "stream" is true (for Gemini: the path is ``:streamGenerateContent``); `api` is
    "chat", "responses", "anthropic" (``/messages``), "gemini" (``:generateContent``,
    ``:streamGenerateContent``) or "other" (by path);
    `path` excludes the query string, which is in `query`.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    json: Any
    api_key: str | None
    stream: bool
    api: Api
    query: str = ""

    @property
    def model(self) -> str | None:
        """The body's "model", if it is a string (for Gemini: the model in the path)."""
        if self.api == "gemini":
            return self.path.rsplit("/models/", 1)[-1].split(":", 1)[0] or None
        model = self.json.get("model") if isinstance(self.json, dict) else None
        return model if isinstance(model, str) else None

    @property
    def last_user_text(self) -> str:
        """The text of the last user message (Chat `messages` or Responses `input`), else ""."""
        if not isinstance(self.json, dict):
            return ""
        if self.api == "gemini":
            return _gemini_user_text(self.json.get("contents"))
        items = self.json.get("messages", self.json.get("input"))
        if isinstance(items, str):
            return items
        if not isinstance(items, list):
            return ""
        for item in reversed(items):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"))
        return ""

    @property
    def images(self) -> list[tuple[str, str | None]]:
        """Every image in the request, in order, as ``(url, detail)``: Chat ``image_url``
        parts, Responses ``input_image`` items and Anthropic ``image`` blocks, in messages and
        in tool outputs."""
        if not isinstance(self.json, dict):
            return []
        found: list[tuple[str, str | None]] = []
        _find_images(self.json.get("messages", self.json.get("input")), found)
        return found


def _find_images(node: Any, found: list[tuple[str, str | None]]) -> None:
    if isinstance(node, list):
        for item in node:
            _find_images(item, found)
    elif isinstance(node, dict):
        kind, image = node.get("type"), node.get("image_url")
        if kind == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str):
            found.append((image["url"], image.get("detail")))
        elif kind == "input_image" and isinstance(image, str):
            found.append((image, node.get("detail")))
        elif kind == "image" and isinstance(node.get("source"), dict):
            # Anthropic's: a url source, or base64 given back as the data: URL it came from.
            src = node["source"]
            if src.get("type") == "url":
                found.append((str(src.get("url")), None))
            else:
                found.append((f"data:{src.get('media_type')};base64,{src.get('data')}", None))
        else:
            for key in ("content", "output"):
                _find_images(node.get(key), found)


def _gemini_user_text(contents: Any) -> str:
    for c in reversed(contents if isinstance(contents, list) else []):
        if isinstance(c, dict) and c.get("role") == "user" and isinstance(c.get("parts"), list):
            texts = [p.get("text") for p in c["parts"] if isinstance(p, dict)]
            if any(isinstance(t, str) for t in texts):
                return "".join(t for t in texts if isinstance(t, str))
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") in ("text", "input_text")
        and isinstance(part.get("text"), str)
    )
