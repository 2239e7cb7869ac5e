"""The SSE decoder on its own: framing rules, whatever way the bytes are cut."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmplug import SSEDecoder, SSEEvent
from llmplug._wire._sse import SSETooLarge

STREAM = (
    b": comment\n\n"
    b'event: response.created\ndata: {"a": 1}\n\n'
    b"data: line one\ndata:line two\ndata:  two spaces\n\n"
    b"id: 5\nretry: 100\ndata: x\r\n\r\n"
    b"data: cr only\r\r"
    b"data\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("response.created", b'{"a": 1}'),
    SSEEvent("", b"line one\nline two\n two spaces"),
    SSEEvent("", b"x"),
    SSEEvent("", b"cr only"),
    SSEEvent("", b""),
    SSEEvent("", b"[DONE]"),
]


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    d = SSEDecoder()
    out: list[SSEEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.close()


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_cutting_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert decode(chunks) == EXPECTED


@given(st.lists(st.binary(max_size=40), max_size=6), st.sampled_from([b"", b"event: e\n"]))
def test_an_event_per_chunk_decodes_as_the_same_bytes_cut_anywhere(
    payloads: list[bytes], before: bytes
) -> None:
    chunks = [before, *(b"data: " + p + b"\n\n" for p in payloads)]
    whole = b"".join(chunks)
    assert decode(chunks) == decode([whole[i : i + 1] for i in range(len(whole))])


_FIELD = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_EVENT = st.tuples(_FIELD, _FIELD).map(lambda t: b"event: " + t[0] + b"\ndata: " + t[1] + b"\n\n")


@given(
    st.lists(
        st.one_of(
            _FIELD.map(lambda d: b"data: " + d + b"\n\n"),
            _EVENT,
            st.sampled_from([b": ping\n\n", b"\n", b"data:x\n\n", b"data: a\ndata: b\n\n"]),
            st.binary(max_size=12),
        ),
        max_size=8,
    )
)
def test_many_events_in_one_chunk_decode_as_the_same_bytes_cut_anywhere(
    pieces: list[bytes],
) -> None:
    # A whole reply in one read (a proxy that buffers) takes a shortcut when it is made of the
    # two shapes OpenAI sends; it and anything else decode as the same bytes byte by byte.
    whole = b"".join(pieces)
    assert decode([whole]) == decode([whole[i : i + 1] for i in range(len(whole))])


@pytest.mark.parametrize("shape", [b"data: %b\n\n", b"event: e\ndata: %b\n\n"])
def test_too_large_event_among_many_in_one_chunk_raises(shape: bytes) -> None:
    d = SSEDecoder(max_event_bytes=10)
    with pytest.raises(SSETooLarge):
        d.feed(shape % b"small" + shape % (b"x" * 11) + shape % b"small")


@pytest.mark.parametrize("shape", [b"data: %b\n\n", b"event: e\ndata: %b\n\n"])
@pytest.mark.parametrize("events", [1, 3])
def test_events_of_exactly_the_limit_in_one_chunk_are_kept(shape: bytes, events: int) -> None:
    d = SSEDecoder(max_event_bytes=10)
    got = d.feed(shape % (b"x" * 10) * events)
    assert [e.data for e in got] == [b"x" * 10] * events
    with pytest.raises(SSETooLarge):
        SSEDecoder(max_event_bytes=10).feed(shape % (b"x" * 11) * events)


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert decode([b"data: a\r", b"\n\r", b"\n"]) == [SSEEvent("", b"a")]


def test_event_without_final_blank_line_is_dispatched_at_close() -> None:
    assert decode([b"data: tail"]) == [SSEEvent("", b"tail")]


def test_event_name_resets_after_dispatch() -> None:
    assert decode([b"event: e1\ndata: 1\n\ndata: 2\n\n"]) == [
        SSEEvent("e1", b"1"),
        SSEEvent("", b"2"),
    ]


def test_too_large_event_raises() -> None:
    d = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(SSETooLarge):
        d.feed(b"data: " + b"x" * 600 + b"\ndata: " + b"y" * 600 + b"\n")
    with pytest.raises(SSETooLarge):
        SSEDecoder(max_event_bytes=1000).feed(b"data: " + b"z" * 2000)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    d = SSEDecoder(max_event_bytes=1500)
    try:
        for i in range(0, len(data), 7):
            d.feed(data[i : i + 7])
        d.close()
    except SSETooLarge:
        pass


BOM = b"\xef\xbb\xbf"


@given(st.lists(st.integers(min_value=0, max_value=len(BOM) + len(STREAM)), max_size=20))
def test_leading_bom_is_dropped_however_the_stream_is_cut(cuts: list[int]) -> None:
    # A BOM glued to "data" would make the first line's field name unknown and lose the event.
    stream = BOM + b"data: first\n\n" + STREAM
    points = sorted(set(cuts))
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert decode(chunks) == [SSEEvent("", b"first"), *EXPECTED]


def test_bom_split_over_chunks_with_empty_ones_between() -> None:
    assert decode([b"\xef", b"", b"\xbb", b"\xbfdata: a\n\n"]) == [SSEEvent("", b"a")]


def test_only_the_first_bom_is_dropped() -> None:
    # After the first one a BOM is content, as the SSE spec says.
    assert decode([BOM + BOM + b"data: a\n\n"]) == []
    assert decode([b"data: " + BOM + b"x\n\n"]) == [SSEEvent("", b"\xef\xbb\xbfx")]


def test_bytes_that_only_start_like_a_bom_are_kept() -> None:
    assert decode([b"\xef", b"\xbbdata: a\n\n"]) == []
    assert decode([b"\xef\xbb"]) == []
    assert decode([b"data: a\n", b"\n"]) == [SSEEvent("", b"a")]
