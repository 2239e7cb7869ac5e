"""The cache key: what makes two calls the same question.

It is the request the wire would send (built by the wire's own ``build_request``, not by the
hook's wrappers, through ``Registry.probe_request``, so whatever the wire puts in a body counts:
tools' schemas, a typed output's schema, every parameter), with its URL, wire and model, minus
what does not change the answer: ``stream``, ``stream_options`` and ``user``. Headers are left
out, and the request is built with a placeholder key, so no API key ever reaches a key or a
store. JSON keys are sorted: the same question in another dict order is the same key.

A miss known without its key (see the cache's hints) has its key made after the call, of the
request its attempt built with its own key (``sent_key``, from ``Registry.take_request``): noted
only when that key is in no other place than a header, so it is the same key."""

from __future__ import annotations

import zlib
from hashlib import blake2b
from typing import Any

import msgspec

from llmplug import Call, ProbedRequest, Registry

__all__ = ["IGNORED", "cache_key", "hint_of", "hint_seed", "sent_key"]

#: Body fields that do not change the answer.
IGNORED = frozenset({"stream", "stream_options", "user"})
_sorted = msgspec.json.Encoder(order="sorted").encode
_deterministic = msgspec.json.Encoder(order="deterministic").encode  # (dicts sorted)
_decode = msgspec.json.decode
_replace = msgspec.structs.replace
_BLAKE2B = blake2b(digest_size=32)


def cache_key(call: Call, registry: Registry) -> tuple[str, ProbedRequest | None]:
    """The key, and the request probed for it, when one was (which the call's attempt may
    send: ``Registry.reuse_probe``)."""
    if call.wire == "group":
        # A group's members may speak different wires: the neutral call is the question.
        payload = _sorted(
            {"group": call.model, "messages": call.messages, "tools": call.tools,
             "params": call.params}
        )  # fmt: skip
        return "g" + _hash(payload), None
    probe = call
    if call.stream or call.attempt or call.headers or call.call_id is not None:
        # Built as a first attempt of chat(): the same question streamed or not, observed or
        # not, is one key. (A call that is already one, the most common, is not copied, and
        # its attempt sends the probe's request instead of building it again.)
        probe = _replace(call, stream=False, attempt=0, headers={}, call_id=None)
    probed = registry.probe_request(probe, IGNORED)
    if probed is None:
        raise LookupError(f"no plugin builds requests for the wire {call.wire!r}")
    request = probed.request
    body = request.content if probed.sorted else _canonical(request.content)
    return _of(call.wire, call.model, request.method, request.url, body), probed


def sent_key(wire: str, model: str, sent: tuple[str, str, bytes]) -> str:
    """The key of a call of ``wire`` and ``model`` from ``sent``, the method, URL and content of
    the request its first attempt built with its own key (``Registry.take_request``), which
    holds the key nowhere else than in a header: the same key as ``cache_key``'s, whose request
    differs from it only there (and its JSON is sorted here)."""
    method, url, content = sent
    return _of(wire, model, method, url, _canonical(content))


def _of(wire: str, model: str, method: str, url: str, body: bytes) -> str:
    return _hash(f"{wire}\0{method}\0{url}\0{model}\0".encode() + body)


def hint_of(call: Call, seed: int) -> int | None:
    """The question's hint: a CRC-32 of the call's last message (its text, else the whole
    message), from ``seed``, ``hint_seed`` of its wire and model. Every call that asks a
    question shares its hint (its key covers these, through the request the wire builds from
    them), and so do other questions: a hint that no answer has says a call is a miss; one
    that some answer has says only that the key must be made. (A wire that sends two different
    last messages alike makes two hints for one key: an answer asked again that way is asked
    of the provider once more, never answered wrongly.) None: the message does not encode."""
    messages = call.messages
    if not messages:
        return seed
    last = messages[-1]
    content = last.content
    try:
        return zlib.crc32(content.encode() if type(content) is str else _deterministic(last), seed)
    except (TypeError, ValueError, OverflowError):  # (a lone surrogate, an unencodable value)
        return None


def hint_seed(wire: str, model: str) -> int:
    return zlib.crc32(f"{wire}\0{model}".encode())


def _hash(data: bytes) -> str:
    # BLAKE2b, not SHA-256: hashlib's SHA-256 is OpenSSL's, whose every new hash object looks
    # its algorithm up again; inside a whole call (its caches cold) that alone measured +17 µs,
    # half the key's cost, where BLAKE2b (built into Python) measured nothing. A copy of one
    # made once: blake2b(data, digest_size=32) parses its keyword at each call (a fifth of it).
    h = _BLAKE2B.copy()
    h.update(data)
    return h.hexdigest()


def _canonical(content: bytes) -> bytes:
    """A body the wire did not take from ``HTTPRequest.post_json`` as it came, sorted here."""
    try:
        body: Any = _decode(content)
    except msgspec.DecodeError:
        return content  # not JSON: the bytes as they are
    if isinstance(body, dict):
        for name in IGNORED:
            body.pop(name, None)
    return _sorted(body)
