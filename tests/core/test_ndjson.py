"""The NDJSON framing: one event per line, whatever way the bytes are cut."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmplug import NDJSONDecoder, SSEEvent
from llmplug._wire._sse import SSETooLarge

STREAM = b'\xef\xbb\xbf{"a": 1}\r\n\n  \n{"b": "x\\ny"}\n{"c": 3}'
LINES = [SSEEvent("", b'{"a": 1}'), SSEEvent("", b'{"b": "x\\ny"}'), SSEEvent("", b'{"c": 3}')]


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = NDJSONDecoder()
    out = [e for p in pieces for e in decoder.feed(p)]
    return out + decoder.close()


def test_lines_become_events_blank_lines_and_a_bom_dropped() -> None:
    assert decode([STREAM]) == LINES


@given(st.lists(st.integers(0, len(STREAM)), max_size=8))
def test_any_cut_gives_the_same_lines(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    assert decode([STREAM[a:b] for a, b in itertools.pairwise(bounds)]) == LINES


def test_a_line_past_the_limit_raises_like_an_sse_event_does() -> None:
    decoder = NDJSONDecoder(max_line_bytes=10)
    assert decoder.feed(b'{"ok": 1}\n') == [SSEEvent("", b'{"ok": 1}')]
    with pytest.raises(SSETooLarge):
        for _ in range(3):
            decoder.feed(b"0123456")  # one line growing chunk by chunk, never ended
    with pytest.raises(SSETooLarge):
        NDJSONDecoder(max_line_bytes=10).feed(b"0123456789abc\n")
