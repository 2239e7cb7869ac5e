"""What the tests of a request built ahead of its call, or noted as it is sent, share
(tests/core/test_probe.py, test_note_request.py, tests/plugins/cache/test_key.py,
test_hints.py): JSON values for hypothesis, a plugin that counts the calls of
``build_request``'s implementations, one that wraps them, and a wire that puts its key
elsewhere than the bearer header."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import strategies as st

from llmplug import Call, HTTPRequest, hookimpl
from llmplug._plugins import openai_chat
from llmplug._vocab._call import PROBE_KEY

#: Any JSON value of a few levels: what params and tool schemas hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


class Counter:
    """Counts the calls of ``build_request``'s implementations (it answers none), and notes
    for each the thread it ran on and whether it was a probe's (the placeholder key); given a
    ``base_url``, only those of calls to it (one test's server: the registry is the process's)."""

    def __init__(self, base_url: str | None = None) -> None:
        self.built = 0
        self.seen: list[tuple[str, bool]] = []
        self.base_url = base_url

    @hookimpl(tryfirst=True)
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if self.base_url is None or call.base_url == self.base_url:
            self.built += 1
            self.seen.append((threading.current_thread().name, key == PROBE_KEY))
        return None


class Signer:
    """A wrapper on ``build_request``, as llmplug-otel's: it must see every request sent."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl(wrapper=True)
    def build_request(self, wire: str, call: Call, key: str) -> Any:
        request = yield
        if request is not None:
            self.seen.append(request.headers.get("authorization", ""))
            request.headers["x-signature"] = "signed"
        return request


class KeyedWire:
    """The Chat wire, but its key goes where a probe's placeholder must not follow: in the URL,
    in the body, in a header of its own added after post_json, or as post_json's key
    transformed. Each of those builds its own request for the attempt."""

    WIRES = ("key-in-url", "key-in-body", "key-in-header", "key-transformed")

    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire not in self.WIRES:
            return None
        url = call.base_url + "/chat/completions"
        body: dict[str, Any] = {"model": call.model, "messages": call.messages}
        if wire == "key-in-url":
            url += f"?key={key}"
        if wire == "key-in-body":
            body["api_key"] = key
        request = HTTPRequest.post_json(
            url, body, call, f"v1:{key}" if wire == "key-transformed" else key
        )
        if wire == "key-in-header":
            request.headers["x-api-key"] = key
        return request

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> Any:
        return openai_chat.ChatParser(call) if wire in self.WIRES else None


class Stamper:
    """A wrapper that changes the body on its way out: not what the wire built."""

    @hookimpl(wrapper=True)
    def build_request(self, wire: str, call: Call, key: str) -> Any:
        request = yield
        if request is not None:
            request.content = request.content[:-1] + b',"stamped":true}'
        return request
