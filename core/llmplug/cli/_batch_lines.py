"""Batch lines: requests read from the input, and OpenAI Batch output lines written out.

Input lines are OpenAI Batch request lines (``{"custom_id", "method", "url", "body"}``) or plain
``{"id", "messages" | "prompt", params...}`` lines. Output lines have the OpenAI Batch output
shape, ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``, with
``body`` the provider's JSON exactly as it came, unless those bytes would not make one line of
valid JSON (see :func:`json_body`).

Every line written is one line of valid UTF-8 JSON whatever the provider sent: the output is read
back to resume, and by tools that split on any Unicode line break."""

from __future__ import annotations

import os
from typing import Any

import msgspec

from llmplug._vocab._errors import LLMError
from llmplug._vocab._redact import redact_urls

__all__ = [
    "URL_OF_WIRE",
    "BadLine",
    "Request",
    "error_line",
    "error_of",
    "json_body",
    "line_id",
    "ok_line",
    "parse_request",
]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode

#: The Batch ``url`` each default wire answers; a line whose url is another is an error line,
#: since its body (and the output's) would be of another API's shape. A wire from a plugin
#: takes Chat Completions lines: their messages are llmplug's neutral shape.
URL_OF_WIRE = {"openai-chat": "/v1/chat/completions", "openai-responses": "/v1/responses"}
_URLS = frozenset(URL_OF_WIRE.values())
_BOM = b"\xef\xbb\xbf"
# Valid inside a JSON string, yet line breaks to Python's str.splitlines() and to JavaScript
# (U+0085 NEL, U+2028, U+2029): written as escapes so no reader sees a line end in the middle.
# UTF-8 never holds these byte runs inside another character, and valid JSON only inside strings.
_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
# Never sent from a line: the model is the one given with -m, and the batch always asks for the
# whole answer at once.
_DROPPED = frozenset({"model", "stream", "stream_options"})


class BadLine(Exception):
    """A line that cannot be run; it becomes an error line under ``custom_id``."""

    def __init__(self, custom_id: str, code: str, message: str) -> None:
        super().__init__(message)
        self.custom_id = custom_id
        self.code = code
        self.message = message


class Request(msgspec.Struct):
    custom_id: str
    messages: Any
    tools: Any
    params: dict[str, Any]


def line_id(number: int) -> str:
    """The id of the error line of input line ``number`` when the line gives none usable."""
    return f"line-{number}"


def parse_request(line: bytes, number: int, wire: str) -> Request:
    """One input line (``number`` counts from 1) as a request for a model on ``wire``.

    The id each line gets (its own, or :func:`line_id`) must stay the one
    ``_batch_input.check_unique`` computes, which checks them all before the run."""
    try:
        data = _decode(line)
    except msgspec.DecodeError as exc:
        raise BadLine(line_id(number), "invalid_json", f"line {number}: {exc}") from None
    if not isinstance(data, dict):
        raise BadLine(line_id(number), "invalid_request", f"line {number}: not a JSON object")
    if "custom_id" in data:
        return _batch_line(data, number, wire)
    cid = data.pop("id", None)
    if not isinstance(cid, str) or not cid:
        raise BadLine(
            line_id(number), "invalid_request", f"line {number}: no custom_id or id (a string)"
        )
    messages = data.pop("messages", None)
    prompt = data.pop("prompt", None)
    if (messages is None) == (prompt is None):
        raise BadLine(cid, "invalid_request", "a plain line needs one of messages or prompt")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise BadLine(cid, "invalid_request", "prompt must be a string")
        messages = [{"role": "user", "content": prompt}]
    tools = data.pop("tools", None)
    return Request(cid, messages, tools, _params(data))


def _batch_line(data: dict[str, Any], number: int, wire: str) -> Request:
    cid = data["custom_id"]
    if not isinstance(cid, str) or not cid:
        raise BadLine(line_id(number), "invalid_request", "custom_id must be a non-empty string")
    url = data.get("url")
    if url not in _URLS:
        raise BadLine(cid, "invalid_url", f"url must be one of {sorted(_URLS)}, got {url!r}")
    expected = URL_OF_WIRE.get(wire, "/v1/chat/completions")
    if url != expected:
        raise BadLine(
            cid, "invalid_url", f"url {url} does not fit the model's wire {wire!r} ({expected})"
        )
    method = data.get("method", "POST")
    if method != "POST":
        raise BadLine(cid, "invalid_request", f"method must be POST, got {method!r}")
    body = data.get("body")
    if not isinstance(body, dict):
        raise BadLine(cid, "invalid_request", "body must be a JSON object")
    body = dict(body)
    tools = body.pop("tools", None)
    if url == "/v1/responses":
        return Request(cid, _responses_messages(body, cid), tools, _params(body))
    messages = body.pop("messages", None)
    if not isinstance(messages, list):
        raise BadLine(cid, "invalid_request", "body.messages must be a list")
    return Request(cid, messages, tools, _params(body))


def _responses_messages(body: dict[str, Any], cid: str) -> list[dict[str, Any]]:
    """A Responses body's ``instructions`` and ``input`` as the neutral (Chat-shaped) messages
    the wire plugin maps back: text and images in, ``output_text`` for earlier replies."""
    out: list[dict[str, Any]] = []
    instructions = body.pop("instructions", None)
    if isinstance(instructions, str):
        out.append({"role": "system", "content": instructions})
    given = body.pop("input", None)
    if isinstance(given, str):
        return [*out, {"role": "user", "content": given}]
    if not isinstance(given, list):
        raise BadLine(cid, "invalid_request", "body.input must be a string or a list of items")
    for item in given:
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            raise BadLine(cid, "invalid_request", "body.input may hold only message items here")
        content = item.get("content")
        if isinstance(content, list):
            content = [_part(p, cid) for p in content]
        out.append({"role": item.get("role", "user"), "content": content})
    return out


def _part(part: Any, cid: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        image = {"url": part["image_url"], "detail": part.get("detail")}
        return {"type": "image_url", "image_url": {k: v for k, v in image.items() if v}}
    raise BadLine(cid, "invalid_request", f"unsupported input content part {kind!r}")


def _params(body: dict[str, Any]) -> dict[str, Any]:
    # max_retries, timeout... are llmplug's client options: a line sets the provider's body only.
    params = {k: v for k, v in body.items() if k not in _DROPPED}
    for option in ("max_retries", "timeout", "total_timeout", "session_id", "trace_id"):
        params.pop(option, None)
    return params


def _request_id() -> str:
    return "batch_req_" + os.urandom(12).hex()


def json_body(raw: bytes) -> bytes | None:
    """The provider's body as one line of valid UTF-8 JSON, or None when it is not JSON at all.

    Kept byte for byte when it already is one; else repaired as little as a reader needs: a
    leading BOM dropped (RFC 8259 lets a parser ignore it, and the wires do), bytes that are
    not UTF-8 replaced by U+FFFD (they can only be inside strings in JSON that parses), and a
    body spanning several lines compacted (in valid JSON a CR or LF is whitespace between
    tokens, never in a string)."""
    if raw[:3] == _BOM:
        raw = raw[3:]
    try:
        raw.decode()
    except UnicodeDecodeError:
        raw = raw.decode("utf-8", "replace").encode()
    try:
        compact = msgspec.json.format(raw, indent=-1)  # validates, as decoding would
    except (msgspec.DecodeError, RecursionError):
        return None
    return compact if b"\n" in raw or b"\r" in raw else raw


def _one_line(line: bytes) -> bytes:
    for char, escape in _BREAKS:
        if char in line:
            line = line.replace(char, escape)
    return line + b"\n"


def _text(value: str) -> str:
    """``value`` as it can be encoded: a lone surrogate (from a plugin's message, say) has no
    UTF-8 and would make the line fail to encode."""
    return value.encode("utf-8", "replace").decode()


def _encode_line(line: dict[str, Any]) -> bytes:
    try:
        return _one_line(_encode(line))
    except UnicodeEncodeError:
        return _one_line(_encode(_mend(line)))


def _mend(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_mend(k): _mend(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mend(v) for v in value]
    return value


def ok_line(custom_id: str, body: bytes, request_id: str | None) -> bytes:
    """A 200 output line; ``body`` is a JSON value on one line (see :func:`json_body`)."""
    return _one_line(
        b"".join(
            (
                b'{"id":"',
                _request_id().encode(),
                b'","custom_id":',
                _encode(_text(custom_id)),
                b',"response":{"status_code":200,"request_id":',
                # the provider's x-request-id; null when it sent none
                _encode(None if request_id is None else _text(request_id)),
                b',"body":',
                body,
                b'},"error":null}',
            )
        )
    )


def error_line(custom_id: str, code: str, message: str) -> bytes:
    """A line that failed before any response: ``error`` holds why (a URL's secrets out of
    it: the message may be any exception's, not only an llmplug error's, which are clean)."""
    line = {
        "id": _request_id(),
        "custom_id": custom_id,
        "response": None,
        "error": {"code": code, "message": redact_urls(message)},
    }
    return _encode_line(line)


def error_of(custom_id: str, exc: LLMError) -> bytes:
    """An llmplug error's line: ``error.code`` is its type (``RateLimitError``...); the
    provider's own code, if any, is in ``response.body.error.code``."""
    response = None
    if exc.status is not None:
        body = {"error": {"message": exc.message, "type": exc.type, "code": exc.code}}
        response = {"status_code": exc.status, "request_id": None, "body": body}
    line = {
        "id": _request_id(),
        "custom_id": custom_id,
        "response": response,
        "error": {"code": type(exc).__name__, "message": exc.message},
    }
    return _encode_line(line)
