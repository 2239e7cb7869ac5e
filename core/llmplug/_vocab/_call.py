"""What the pipeline hands to plugins: the neutral call, and the HTTP request a wire plugin
builds from it."""

from __future__ import annotations

import threading
from typing import Any

import msgspec

from ._redact import is_secret_name, redact_url
from ._types import Message, Tool

__all__ = ["Call", "HTTPRequest", "merge_headers"]


class Call(msgspec.Struct, kw_only=True):
    """One logical call, the same for every attempt. ``params`` are the provider parameters
    (``api_params`` under call keywords), sent as they are; None values are never sent."""

    provider: str
    model: str
    wire: str
    base_url: str
    messages: list[Message]
    tools: list[Tool] | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    stream: bool = False
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    attempt: int = 0
    #: Client options of this call (never sent): per-phase HTTP timeout, a deadline for the
    #: whole call (retries and stream included), retries after the first try (None: the
    #: interface's), and the caller's session, for plugins such as a sticky key strategy.
    timeout: Any = None
    total_timeout: float | None = None
    max_retries: int | None = None
    session_id: str | None = None
    #: Never sent either: it tags this call's log events, so the attempts and tool turns of
    #: one decorated call can be found together.
    trace_id: str | None = None
    #: Set by the core only while some plugin observes: a process-unique id, the ``call_id``
    #: of the call's observer records, and when the call started (epoch seconds).
    call_id: str | None = None
    started: float | None = None
    #: Never sent: what a response cache may do for this call (None/True: read and write,
    #: False: neither, ``"refresh"``: write only), and how long what it writes lives (seconds;
    #: None: the cache's own ``ttl``).
    cache: bool | str | None = None
    cache_ttl: float | None = None

    # Plugins print calls in their errors: the base_url's secrets stay out of them, in the
    # repr and in rich's pretty printing (which msgspec feeds from __rich_repr__).
    def __rich_repr__(self) -> list[tuple[str, Any]]:
        shown = {"base_url": redact_url(self.base_url), "headers": _hidden(self.headers)}
        return [(f, shown[f] if f in shown else getattr(self, f)) for f in self.__struct_fields__]

    def __repr__(self) -> str:
        return _repr(self)


class HTTPRequest(msgspec.Struct, kw_only=True):
    """An HTTP request, independent of the HTTP client that will send it."""

    method: str = "POST"
    url: str
    headers: dict[str, str]
    content: bytes = b""

    @classmethod
    def post_json(cls, url: str, body: Any, call: Call, key: str) -> HTTPRequest:
        """A JSON POST with a bearer key, asking for SSE when the call streams, plus the
        interface's configured headers (which win; the core applies them again after
        ``build_request`` in any case, so a wire not built on this gets them too)."""
        headers = {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "accept": "text/event-stream" if call.stream else "application/json",
        }
        if call.headers:
            headers = merge_headers(headers, call.headers)
        if key is PROBE_KEY and (probing := _probing.ignore) is not None:
            return _probed(cls, url, headers, body, probing)
        return cls(url=url, headers=headers, content=_encode(body))

    # The key is in a header, and may be in the URL: neither is shown.
    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            ("method", self.method),
            ("url", redact_url(self.url)),
            ("headers", _hidden(self.headers)),
            ("content", self.content),
        ]

    def __repr__(self) -> str:
        return _repr(self)


def _hidden(headers: dict[str, str]) -> dict[str, str]:
    return {k: "***" if is_secret_name(k) else v for k, v in headers.items()}


def _repr(struct: Call | HTTPRequest) -> str:
    fields = ", ".join(f"{k}={v!r}" for k, v in struct.__rich_repr__())
    return f"{type(struct).__name__}({fields})"


def merge_headers(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """``base`` with ``extra`` on top; header names compare without case, so a configured
    ``X-Title`` replaces a plugin's ``x-title`` instead of both being sent."""
    names = {k.lower() for k in extra}
    merged = {k: v for k, v in base.items() if k.lower() not in names}
    merged.update(extra)
    return merged


_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


#: The key a request built ahead of its call is built with (``Registry.probe_request``): no
#: API key is in it. This very string, handed to :meth:`HTTPRequest.post_json` while a probe
#: is building, has it encode the JSON with every object's keys sorted and without the
#: top-level names the probe ignores, and return a :class:`ProbedJSON` that says so.
PROBE_KEY = "llmplug-probe-key"


class _Probing(threading.local):
    """The names a probe building on this thread ignores (None: no probe is building). A
    probe builds without awaiting anything, so a thread's own is the probe's own."""

    ignore: frozenset[str] | None = None


_probing = _Probing()


def _probed(
    cls: type[HTTPRequest], url: str, headers: dict[str, str], body: Any, ignore: frozenset[str]
) -> HTTPRequest:
    dropped = False
    if isinstance(body, dict) and not ignore.isdisjoint(body):
        body = {k: v for k, v in body.items() if k not in ignore}
        dropped = True
    try:
        content = _encode_sorted(body)
    except TypeError:
        # A dict with keys that are not strings (logit_bias by token id) has no sorted
        # encoding: the body as it is, and the probe's caller sorts its JSON itself.
        return cls(url=url, headers=headers, content=_encode(body))
    return ProbedJSON(
        url=url, headers=headers, content=content, made=(url, content, len(headers), dropped)
    )


class ProbedJSON(HTTPRequest, kw_only=True):
    """What :meth:`HTTPRequest.post_json` makes for a probe (see :data:`PROBE_KEY`): JSON with
    its keys sorted, and ``made``: its URL, its content, how many headers it had, and whether
    it left out some of the names to ignore, as post_json made it."""

    made: tuple[str, bytes, int, bool]
