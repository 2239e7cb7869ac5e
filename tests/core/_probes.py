"""What the tests of a request built ahead of its call share (tests/core/test_probe.py,
tests/plugins/cache/test_key.py, test_hints.py): JSON values for hypothesis, and a plugin that
counts the calls of ``build_request``'s implementations."""

from __future__ import annotations

import threading

from hypothesis import strategies as st

from llmplug import Call, HTTPRequest, hookimpl
from llmplug._vocab._call import PROBE_KEY

#: Any JSON value of a few levels: what params and tool schemas hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
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
