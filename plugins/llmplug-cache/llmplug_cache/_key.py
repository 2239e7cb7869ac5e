"""The cache key: what makes two calls the same question.

It is the request the wire would send (built by the wire's own ``build_request``, so whatever
the wire puts in a body counts: tools' schemas, a typed output's schema, every parameter),
with its URL, wire and model, minus what does not change the answer: ``stream``,
``stream_options`` and ``user``. Headers are left out, and the request is built with a
placeholder key, so no API key ever reaches a key or a store. JSON keys are sorted: the same
question in another dict order is the same key."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from llmplug import Call, Registry

__all__ = ["IGNORED", "cache_key"]

#: Body fields that do not change the answer.
IGNORED = ("stream", "stream_options", "user")
_PLACEHOLDER_KEY = "llmplug-cache"
_sorted = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.decode


def cache_key(call: Call, registry: Registry) -> str:
    if call.wire == "group":
        # A group's members may speak different wires: the neutral call is the question.
        payload = _sorted(
            {"group": call.model, "messages": call.messages, "tools": call.tools,
             "params": call.params}
        )  # fmt: skip
        return "g" + hashlib.sha256(payload).hexdigest()
    probe = msgspec.structs.replace(call, stream=False, attempt=0, headers={})
    request = registry.hook.build_request(wire=call.wire, call=probe, key=_PLACEHOLDER_KEY)
    if request is None:
        raise LookupError(f"no plugin builds requests for the wire {call.wire!r}")
    body = _canonical(request.content)
    head = f"{call.wire}\0{request.method}\0{request.url}\0{call.model}\0".encode()
    return hashlib.sha256(head + body).hexdigest()


def _canonical(content: bytes) -> bytes:
    try:
        body: Any = _decode(content)
    except msgspec.DecodeError:
        return content  # not JSON: the bytes as they are
    if isinstance(body, dict):
        for name in IGNORED:
            body.pop(name, None)
    return _sorted(body)
