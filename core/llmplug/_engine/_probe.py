"""A call's request built before the call runs (``Registry.probe_request``), for a feature that
must know it first: llmplug-cache's key is the request the wire would send. Or noted as the
call's first attempt builds it (``Registry.note_request``), for one that can wait: the same
request, but with the call's own key, and made by work the call does anyway.

The probe asks the wire's ``build_request`` implementations (not its wrappers, which see
requests on their way out) with a placeholder key. A body made by
:meth:`HTTPRequest.post_json` comes with its JSON keys sorted, so the same question in another
dict order is the same bytes, with no decoding and encoding again.

Built once, a request is not built again: handed over (``Registry.reuse_probe``), the probed
call's first attempt (the same ``Call``, with the same plugins) sends the probe's URL and body,
with the key it leased in the bearer header; the hook's wrappers see it as a request built
(see ``_dispatch._build_request``). Only a request that the wire took from ``post_json``
untouched qualifies, and only if the placeholder key went nowhere but into that header: a wire
that puts its key in the URL or the body, signs the request, or changes it after ``post_json``
gets its own request built, as always."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from llmplug._vocab._call import PROBE_KEY, HTTPRequest, ProbedJSON, _probing

if TYPE_CHECKING:
    from llmplug._vocab._call import Call

    from ._dispatch import HotHooks
    from ._registry import Registry

__all__ = [
    "MAX_NOTED",
    "Noted",
    "ProbedRequest",
    "note",
    "prebuilt",
    "probe_request",
    "reuse",
]

_BEARER = f"Bearer {PROBE_KEY}"
_PROBE_BYTES = PROBE_KEY.encode()


class ProbedRequest:
    """What ``Registry.probe_request`` built: the ``request`` (its key a placeholder), and
    whether its content is JSON with every object's keys sorted and without the ``ignore``
    names at the top level (``sorted``: made by ``post_json``), else as the wire made it."""

    __slots__ = ("_reuse", "request", "sorted")

    def __init__(
        self,
        request: HTTPRequest,
        sorted: bool,
        reuse: tuple[Call, HotHooks, str, dict[str, str], bytes] | None = None,
    ) -> None:
        self.request = request
        self.sorted = sorted
        #: What the call's attempt may send instead of building its request (see reuse).
        self._reuse = reuse

    def __repr__(self) -> str:
        return f"ProbedRequest(request={self.request!r}, sorted={self.sorted!r})"


#: By ``id(call)``: the probed requests a call's first attempt sends, each (the call, the
#: dispatch of the plugins it was built with, its URL, a copy of its headers, its content),
#: taken by the attempt. Not a context variable: every timer asyncio schedules (a timeout's,
#: cancelled but held until its time) keeps a copy of its context, and with it the call, which
#: then lived for minutes and made the garbage collector run (3.7 µs a call, measured).
_prebuilt: dict[int, tuple[Call, HotHooks, str, dict[str, str], bytes]] = {}
#: Handed over but never sent (a call that failed before its attempt): dropped past this many.
_MAX_PREBUILT = 256


def probe_request(registry: Registry, call: Call, ignore: frozenset[str]) -> ProbedRequest | None:
    hot = registry.hot  # before the builder: see Registry._refresh
    build = registry.unwrapped("build_request")
    outer, _probing.ignore = _probing.ignore, ignore
    try:
        request: HTTPRequest | None = build(wire=call.wire, call=call, key=PROBE_KEY)
    finally:
        _probing.ignore = outer
    if request is None:
        return None
    if type(request) is not ProbedJSON:
        return ProbedRequest(request, False)  # not post_json's
    url, content, size, dropped = request.made
    if request.content is not content:
        return ProbedRequest(request, False)  # changed since
    # What the attempt may send as it is, with its own key in the bearer header: nothing of
    # post_json's changed or added since but the key's placeholder, which went nowhere else.
    headers = request.headers
    if (
        not dropped
        and request.url is url
        and len(headers) == size
        and headers.get("authorization") == _BEARER
        and PROBE_KEY not in url
        and content.find(_PROBE_BYTES) < 0  # (not ``in``: see _KeyState.scrub)
    ):
        return ProbedRequest(request, True, (call, hot, url, headers, content))
    return ProbedRequest(request, True)


def reuse(call: Call, probed: ProbedRequest) -> None:
    reusable = probed._reuse
    if reusable is None or reusable[0] is not call:
        return
    if len(_prebuilt) >= _MAX_PREBUILT:
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # (another thread's)
            del _prebuilt[next(iter(_prebuilt))]  # the oldest
    _, hot, url, headers, content = reusable
    # Headers of its own: the caller's probe keeps the placeholder's.
    _prebuilt[id(call)] = (call, hot, url, dict(headers), content)


def prebuilt(call: Call, hot: HotHooks, key: str) -> HTTPRequest | None:
    """The request of ``call``'s attempt built when it was probed, with ``key``; None when it
    must be built (another call, a later attempt, plugins changed since)."""
    pre = _prebuilt.pop(id(call), None)
    # (The entry holds its call: no other call can have its id while it is there.)
    if pre is None or pre[1] is not hot or call.attempt:
        return None
    _, _, url, headers, content = pre
    headers["authorization"] = f"Bearer {key}"
    return HTTPRequest(url=url, headers=headers, content=content)


#: The method, URL and content of a request as a wire's implementations built it.
Noted = tuple[str, str, bytes]

#: By ``id(call)``: the request of each call whose first attempt's request was asked for
#: (``Registry.note_request``), None until that attempt builds it. (The asker holds the call
#: until it takes the request: no other call can have its id meanwhile.)
_noted: dict[int, Noted | None] = {}
#: Asked for but never taken (an asker that forgot): dropped past this many.
MAX_NOTED = 4096


def note(call: Call, key: str, request: HTTPRequest | None) -> None:
    """Note ``request``, which the implementations of ``build_request`` built for ``call`` with
    ``key``, if it was asked for and is the first built (a retry's is the same question's).
    Its URL is noted as built: the core adds the interface's query to the request afterwards.
    Not noted: a request with its key beyond its headers (in the URL or the body), or with a
    content that is not bytes."""
    if request is None or _noted.get(id(call), False) is not None:
        return  # (not asked for, or built already)
    url, content = request.url, request.content
    if type(content) is not bytes or (key and (key in url or content.find(key.encode()) >= 0)):
        return
    _noted[id(call)] = (request.method, url, content)
