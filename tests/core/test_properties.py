"""Property and fuzz tests: the SSE decoder and both wire parsers under any bytes cut anywhere,
chunking invariance of valid streams, and the token bucket's budget, FIFO order and liveness on
a real event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplug import (
    Call,
    Completion,
    ConfigError,
    ReasoningDelta,
    ResponseError,
    SSEDecoder,
    SSEEvent,
    StreamError,
    StreamEvent,
    TextDelta,
    TokenBucket,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmplug._plugins.openai_chat import ChatParser
from llmplug._plugins.openai_responses import ResponsesParser
from llmplug._wire._sse import SSETooLarge

# Deterministic (no database, derandomized) and free of wall-clock deadlines.
FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Parser = ChatParser | ResponsesParser


def call(wire: str) -> Call:
    return Call(provider="p", model="m", wire=wire, base_url="http://x", messages=[])


def make_parsers() -> list[Parser]:
    return [ChatParser(call("openai-chat")), ResponsesParser(call("openai-responses"))]


# -- chunking ------------------------------------------------------------------------------------


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points; repeated points make empty chunks, which are legal.
    Sometimes also cut after every CR, with an empty chunk there (a CRLF split in two)."""
    n = len(data)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=n), max_size=40))
    if draw(st.booleans()):
        after_cr = [i + 1 for i in range(n) if data[i] == 13]
        cuts += after_cr * draw(st.integers(1, 2))
    cuts.sort()
    bounds = [0, *cuts, n]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def decode(chunks: list[bytes], max_event_bytes: int | None = None) -> list[SSEEvent]:
    d = SSEDecoder() if max_event_bytes is None else SSEDecoder(max_event_bytes=max_event_bytes)
    out: list[SSEEvent] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.close()


# -- building valid SSE --------------------------------------------------------------------------

# No lone surrogates: a server cannot send them as UTF-8.
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
IDENT = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=10)
ENDINGS = (b"\n", b"\r", b"\r\n")


@dataclass
class Framing:
    """How valid events are written: line ends per line, data split over several ``data:``
    lines or not, comments and ignored fields between events."""

    endings: list[int]
    split: list[bool]
    space: list[bool]
    extras: list[int]
    pos: int = 0

    def _next(self, seq: list[Any], default: Any) -> Any:
        return seq[self.pos % len(seq)] if seq else default

    def write(self, events: list[tuple[str | None, Any]]) -> bytes:
        lines: list[bytes] = []
        self.pos = 0
        for name, payload in events:
            self.pos += 1
            extra = self._next(self.extras, 0)
            if extra == 1:
                lines += [b": keep-alive", b""]
            elif extra == 2:
                lines.append(b"id: " + str(self.pos).encode())
            elif extra == 3:
                lines.append(b"retry: 1000")
            if name is not None:
                lines.append(b"event: " + name.encode())
            text = payload if isinstance(payload, str) else None
            if text is None:
                # Indented JSON has newlines only between tokens, so its lines can be sent as
                # several data: lines (joined back with LF); strings escape their own newlines.
                indent = 1 if self._next(self.split, False) else None
                text = json.dumps(payload, ensure_ascii=False, indent=indent)
            sep = b": " if self._next(self.space, True) else b":"
            lines += [b"data" + sep + line.encode() for line in text.split("\n")]
            lines.append(b"")
        out: list[bytes] = []
        prev = b"\n"
        for i, line in enumerate(lines):
            end = ENDINGS[self.endings[i % len(self.endings)] if self.endings else 0]
            if prev == b"\r" and not line and end == b"\n":
                # CR then an LF-ended blank line would be one CRLF, not two line ends.
                end = b"\r\n"
            out.append(line + end)
            prev = end
        return b"".join(out)


framings = st.builds(
    Framing,
    endings=st.lists(st.integers(0, 2), max_size=8),
    split=st.lists(st.booleans(), max_size=4),
    space=st.lists(st.booleans(), max_size=4),
    extras=st.lists(st.integers(0, 5), max_size=6),
)


@dataclass
class Script:
    """One reply, wire-neutral: what the model said, in pieces."""

    model: str
    pieces: list[tuple[str, str]]  # (kind, text): kind is text, reasoning or refusal
    tools: list[tuple[str, str, list[str]]]  # (call id, name, argument pieces)
    usage: tuple[int, int, int, int] | None
    variant: int  # wire-specific choices (reasoning key, .done events, event order, ...)
    finish: str = field(default="stop")

    def joined(self, kind: str) -> str:
        return "".join(t for k, t in self.pieces if k == kind)

    def expected(self, finish: str | None, response_id: str | None = None) -> Completion:
        return Completion(
            text=self.joined("text"),
            tool_calls=[ToolCall(id=i, name=n, arguments="".join(a)) for i, n, a in self.tools],
            reasoning=self.joined("reasoning") or None,
            finish_reason=finish,
            usage=self.usage_struct(),
            refusal=self.joined("refusal") or None,
            model=self.model,
            response_id=response_id,
        )

    def usage_struct(self) -> Usage | None:
        if self.usage is None:
            return None
        inp, out, cached, reasoning = self.usage
        return Usage(
            input_tokens=inp,
            output_tokens=out,
            total_tokens=inp + out,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
        )


small = st.integers(min_value=0, max_value=10**6)
scripts = st.builds(
    Script,
    model=IDENT,
    pieces=st.lists(st.tuples(st.sampled_from(["text", "reasoning", "refusal"]), TEXT), max_size=8),
    tools=st.lists(
        st.tuples(IDENT, IDENT, st.lists(TEXT, max_size=4)), max_size=3, unique_by=lambda t: t[0]
    ),
    usage=st.none() | st.tuples(small, small, small, small),
    variant=st.integers(0, 15),
    finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter", "weird"]),
)


def chat_events(s: Script) -> list[tuple[str | None, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, Any]:
        return None, {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": s.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    reasoning_key = "reasoning" if s.variant & 1 else "reasoning_content"
    keys = {"text": "content", "reasoning": reasoning_key, "refusal": "refusal"}
    events: list[tuple[str | None, Any]] = [chunk({"role": "assistant", "content": ""})]
    for kind, text in s.pieces:
        if s.variant & 2 and kind != "refusal":
            # Mistral's shape: content as a list of typed parts, with a part type we skip.
            part = (
                {"type": "text", "text": text}
                if kind == "text"
                else {"type": "thinking", "thinking": [{"type": "text", "text": text}]}
            )
            skipped = {"type": "reference", "reference_ids": [1], "text": {"a": 1}}
            events.append(chunk({"content": [part, skipped]}))
        else:
            events.append(chunk({keys[kind]: text}))
    for i, (cid, name, args) in enumerate(s.tools):
        first = {"index": i, "id": cid, "type": "function"}
        events.append(
            chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
        events += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": a}}]}) for a in args
        ]
    events.append(chunk({}, s.finish))
    if s.usage is not None:
        inp, out, cached, reasoning = s.usage
        usage = {
            "prompt_tokens": inp,
            "completion_tokens": out,
            "total_tokens": inp + out,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        events.append((None, {"id": "chatcmpl-1", "model": s.model, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def responses_events(s: Script) -> list[tuple[str | None, Any]]:
    seq = iter(range(10**6))
    events: list[tuple[str | None, Any]] = []

    def ev(type_: str, **kw: Any) -> None:
        events.append(
            (type_ if s.variant & 4 else None, {"type": type_, "sequence_number": next(seq), **kw})
        )

    base = {"id": "resp_1", "object": "response", "model": s.model}
    ev("response.created", response={**base, "status": "in_progress", "output": []})
    ev("response.in_progress", response={**base, "status": "in_progress", "output": []})
    # Hosted tools' types, with fields named like ours but shaped otherwise: always skipped.
    search = {"type": "tool_search_call", "id": "ts_1", "arguments": {"q": "x"}}
    ev("response.output_item.added", output_index=99, item=search)
    ev("response.shell_call_output_content.delta", item_id="sh_1", delta={"stdout": "x"})
    reasoning_type = (
        "response.reasoning_text.delta"
        if s.variant & 1
        else "response.reasoning_summary_text.delta"
    )
    types = {
        "text": "response.output_text.delta",
        "reasoning": reasoning_type,
        "refusal": "response.refusal.delta",
    }
    for kind, text in s.pieces:
        ev(types[kind], item_id="msg_1", output_index=0, content_index=0, delta=text)
    output: list[dict[str, Any]] = []
    if s.joined("reasoning"):
        summary = [{"type": "summary_text", "text": s.joined("reasoning")}]
        output.append({"type": "reasoning", "id": "rs_1", "summary": summary})
    content = []
    if s.joined("text"):
        content.append({"type": "output_text", "text": s.joined("text"), "annotations": []})
    if s.joined("refusal"):
        content.append({"type": "refusal", "refusal": s.joined("refusal")})
    if content:
        output.append({"type": "message", "id": "msg_1", "role": "assistant", "content": content})
    for i, (cid, name, args) in enumerate(s.tools, start=len(output)):
        item = {"type": "function_call", "id": f"fc_{i}", "call_id": cid, "name": name}
        added = (
            "response.output_item.added",
            {"output_index": i, "item": {**item, "arguments": ""}},
        )
        deltas = [
            (
                "response.function_call_arguments.delta",
                {"item_id": f"fc_{i}", "output_index": i, "delta": a},
            )
            for a in args
        ]
        # Some servers send the first argument delta before its item.
        for type_, fields in (
            [*deltas[:1], added, *deltas[1:]] if s.variant & 8 else [added, *deltas]
        ):
            ev(type_, **fields)
        full = {**item, "arguments": "".join(args)}
        if s.variant & 2:
            ev("response.function_call_arguments.done", item_id=f"fc_{i}", arguments="".join(args))
            ev("response.output_item.done", output_index=i, item=full)
        output.append(full)
    final: dict[str, Any] = {**base, "status": "completed", "output": [*output, search]}
    if s.usage is not None:
        inp, out, cached, reasoning = s.usage
        final["usage"] = {
            "input_tokens": inp,
            "output_tokens": out,
            "total_tokens": inp + out,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens_details": {"reasoning_tokens": reasoning},
        }
    ev("response.completed", response=final)
    return events


def run_stream(parser: Parser, events: list[SSEEvent]) -> tuple[list[StreamEvent], Completion]:
    out: list[StreamEvent] = []
    for e in events:
        out += parser.feed(e)
    assert parser.done
    return out, parser.result()


def check_stream_events(out: list[StreamEvent], result: Completion) -> None:
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == result.text
    assert "".join(e.text for e in out if isinstance(e, ReasoningDelta)) == (result.reasoning or "")
    for i, tc in enumerate(result.tool_calls):
        deltas = [e for e in out if isinstance(e, ToolCallDelta) and e.index == i]
        assert "".join(d.arguments for d in deltas) == tc.arguments


# -- property 2: chunking invariance -------------------------------------------------------------


Events = Callable[[Script], list[tuple[str | None, Any]]]
#: Each wire: its parser, the events a script makes on it, and the finish reason it ends with.
#: The response id the events carry, per wire.
RESPONSE_IDS = {"openai-chat": "chatcmpl-1", "openai-responses": "resp_1"}
STREAMS: dict[str, tuple[Callable[[Call], Parser], Events, Callable[[Script], str]]] = {
    "openai-chat": (ChatParser, chat_events, lambda s: s.finish),
    "openai-responses": (
        ResponsesParser,
        responses_events,
        lambda s: "tool_calls" if s.tools else "stop",
    ),
}


@pytest.mark.parametrize("wire", list(STREAMS))
@settings(FAST, max_examples=150)
@given(script=scripts, framing=framings, data=st.data())
def test_a_stream_cut_anyhow_gives_the_same_events_and_completion(
    wire: str, script: Script, framing: Framing, data: st.DataObject
) -> None:
    parser, events_of, finish = STREAMS[wire]
    stream = framing.write(events_of(script))
    whole = decode([stream])
    ref_out, ref = run_stream(parser(call(wire)), whole)
    assert ref == script.expected(finish(script), RESPONSE_IDS[wire])
    check_stream_events(ref_out, ref)
    for _ in range(3):
        chunks = data.draw(chunkings(stream))
        events = decode(chunks)
        assert events == whole
        assert run_stream(parser(call(wire)), events) == (ref_out, ref)


def test_empty_chunk_between_cr_and_lf_keeps_one_line_end() -> None:
    # Regression: an empty chunk after a trailing CR used to forget the CR, so the LF that
    # followed counted as a blank line and dispatched the event early.
    assert decode([b"data: a\r", b"", b"\ndata: b\n\n"]) == [SSEEvent("", b"a\nb")]


# -- property 1: nothing but documented errors ---------------------------------------------------

KEYS = [
    "choices", "delta", "content", "reasoning_content", "reasoning", "refusal", "tool_calls",
    "index", "id", "function", "name", "arguments", "finish_reason", "usage", "prompt_tokens",
    "completion_tokens", "total_tokens", "prompt_tokens_details", "cached_tokens",
    "completion_tokens_details", "reasoning_tokens", "model", "error", "message", "type", "code",
    "x_groq", "item", "item_id", "output_index", "response", "output", "status", "summary",
    "text", "call_id", "incomplete_details", "reason", "input_tokens", "output_tokens",
    "input_tokens_details", "output_tokens_details", "delta",
]  # fmt: skip
TYPES = [
    "response.output_text.delta", "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta", "response.function_call_arguments.delta",
    "response.refusal.delta", "response.output_item.added", "response.output_item.done",
    "response.function_call_arguments.done", "response.completed", "response.failed",
    "response.incomplete", "error", "function_call", "message", "reasoning", "output_text",
    "summary_text", "completed", "incomplete", "failed", "max_output_tokens", "[DONE]",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(TYPES)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner, max_size=6)
    ),
    max_leaves=25,
)


def dumps(value: Any, ascii_only: bool) -> bytes:
    # NaN/Infinity tokens and escaped lone surrogates are invalid to strict decoders: good.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """A valid wire object with some of its values swapped for arbitrary JSON (type confusion)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    if isinstance(value, dict):
        out = {k: draw(mutated(v)) for k, v in value.items() if draw(st.integers(0, 9))}
        if draw(st.integers(0, 5)) == 0:
            out[draw(st.sampled_from(KEYS))] = draw(json_values)
        return out
    if isinstance(value, list):
        return [draw(mutated(v)) for v in value]
    return value


@st.composite
def damaged(draw: st.DrawFn, wire: bytes) -> bytes:
    """Valid SSE bytes, then cut, with garbage put in, bytes dropped or line ends changed."""
    buf = bytearray(wire)
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(buf)))
        if op == 0:
            del buf[at:]
        elif op == 1:
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            buf[at:at] = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\n", b"\xff", b"\xc3"]))
        elif op == 3:
            del buf[at : at + draw(st.integers(1, 8))]
        elif at < len(buf):
            buf[at] = draw(st.integers(0, 255))
    return bytes(buf)


def feed_all(events: list[SSEEvent]) -> None:
    """Every event into both parsers: each may only stop with a StreamError."""
    for parser in make_parsers():
        error: StreamError | None = None
        try:
            for e in events:
                parser.feed(e)
        except StreamError as exc:
            error = exc
        if error is None:
            assert isinstance(parser.result(), Completion)
        else:
            assert isinstance(error.partial, Completion)
            assert str(error)


def body_only_documented_errors(body: bytes) -> None:
    for parser in make_parsers():
        try:
            assert isinstance(parser.parse_body(body), Completion)
        except ResponseError as exc:
            str(exc)


def decode_and_feed(chunks: list[bytes], max_event_bytes: int | None) -> None:
    try:
        events = decode(chunks, max_event_bytes)
    except SSETooLarge:
        return
    for e in events:
        assert isinstance(e.data, bytes)
        assert isinstance(e.event, str)
    feed_all(events)


@settings(FAST, max_examples=300)
@given(
    raw=st.binary(max_size=600),
    data=st.data(),
    limit=st.sampled_from([None, 64, 512]),
)
def test_arbitrary_bytes_raise_only_documented_errors(
    raw: bytes, data: st.DataObject, limit: int | None
) -> None:
    decode_and_feed(data.draw(chunkings(raw)), limit)
    body_only_documented_errors(raw)


@settings(FAST, max_examples=300)
@given(
    script=scripts,
    framing=framings,
    responses=st.booleans(),
    data=st.data(),
    limit=st.sampled_from([None, None, 128]),
)
def test_damaged_valid_streams_raise_only_documented_errors(
    script: Script, framing: Framing, responses: bool, data: st.DataObject, limit: int | None
) -> None:
    events = responses_events(script) if responses else chat_events(script)
    wire = data.draw(damaged(framing.write(events)))
    decode_and_feed(data.draw(chunkings(wire)), limit)


@settings(FAST, max_examples=200)
@given(
    script=scripts,
    responses=st.booleans(),
    ascii_only=st.booleans(),
    data=st.data(),
)
def test_type_confused_events_raise_only_documented_errors(
    script: Script, responses: bool, ascii_only: bool, data: st.DataObject
) -> None:
    events = responses_events(script) if responses else chat_events(script)
    confused = set(data.draw(st.lists(st.integers(0, len(events) - 1), min_size=1, max_size=3)))
    sse: list[SSEEvent] = []
    for i, (name, payload) in enumerate(events):
        value = payload
        if i in confused and not isinstance(payload, str):
            value = data.draw(mutated(payload))
        raw = value.encode() if isinstance(value, str) else dumps(value, ascii_only)
        sse.append(SSEEvent(name or "", raw))
    feed_all(sse)
    # The same objects as whole bodies (a final response, a chunk) and as arbitrary JSON.
    for _, payload in events[-2:]:
        if not isinstance(payload, str):
            body_only_documented_errors(dumps(data.draw(mutated(payload)), ascii_only))
    body_only_documented_errors(dumps(data.draw(json_values), ascii_only))


@pytest.mark.parametrize(
    "template",
    [
        b'{"choices":[{"delta":{"content":"a%sb"}}]}',
        b'{"type":"response.output_text.delta","delta":"a%sb"}',
        b'{"error":{"message":"a%sb"}}',
        b'{"output":[{"type":"message","content":[{"type":"output_text","text":"a%sb"}]}]}',
    ],
)
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
def test_invalid_utf8_inside_json_strings_is_a_documented_error(
    template: bytes, bad: bytes
) -> None:
    data = template % bad
    feed_all([SSEEvent("", data)])
    body_only_documented_errors(data)


def test_absurdly_nested_json_is_a_documented_error() -> None:
    # msgspec and str() both give up near the interpreter's recursion limit; at every depth
    # around it the parsers must still answer with their own errors.
    for depth in range(850, 1100, 2):
        nested = b"[" * depth + b"]" * depth
        for data in (
            b'{"error":{"message":%s}}' % nested,
            b'{"type":"error","code":1,"message":%s}' % nested,
            b'{"type":"response.failed","response":{"error":{"message":%s}}}' % nested,
            b'{"unknown":%s}' % nested,
        ):
            feed_all([SSEEvent("", data)])
            body_only_documented_errors(data)


# -- property 3: the token bucket ----------------------------------------------------------------


@dataclass
class Bucket:
    capacity: float
    rate_factor: float  # refill rate in capacities per second, before the speed floor
    slack: float  # seconds a waiter may be held past its turn to be admitted with others
    ops: list[tuple[str, float]]  # ("acquire", cost fraction), ("sleep", ms), ("cancel", pick)


bucket_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["acquire", "acquire", "acquire", "cancel"]), st.floats(0, 1)),
        st.tuples(st.just("acquire"), st.sampled_from([0.0, 1.0])),
        st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.0, 1.0, 5.0])),
    ),
    min_size=4,
    max_size=24,
)
buckets = st.builds(
    Bucket,
    capacity=st.sampled_from([1.0, 2.5, 3.0, 10.0, 100.0]),
    rate_factor=st.floats(5.0, 40.0),
    slack=st.sampled_from([0.0, 0.0, 0.01, 0.03]),
    ops=bucket_ops,
)

#: A task may resume this long after the bucket granted it (one loop iteration, in practice
#: microseconds); windows measured from resumptions get that much refill as slack.
RESUME_SLACK = 0.002


@dataclass
class Request:
    seq: int
    cost: float
    waiting_before: int = 0
    admitted_at: float | None = None
    admitted_seq: int | None = None
    cancelled: bool = False


async def run_bucket(spec: Bucket) -> None:
    costs = [spec.capacity * x for kind, x in spec.ops if kind == "acquire"]
    sleeps = sum(x for kind, x in spec.ops if kind == "sleep") / 1000
    # Fast enough that the whole run (sleeps plus waiting for refills) stays near 0.2 s.
    rate = max(spec.capacity * spec.rate_factor, (sum(costs) - spec.capacity) / 0.15)
    bucket = TokenBucket(spec.capacity, rate, slack=spec.slack)
    requests: list[Request] = []
    tasks: list[asyncio.Task[None]] = []
    admitted: list[Request] = []
    start = time.monotonic()

    async def acquire(req: Request) -> None:
        req.waiting_before = bucket.waiting
        await bucket.acquire(req.cost)
        req.admitted_at = time.monotonic()
        req.admitted_seq = len(admitted)
        admitted.append(req)

    last_request = start
    for kind, x in spec.ops:
        if kind == "acquire":
            req = Request(seq=len(requests), cost=spec.capacity * x)
            requests.append(req)
            tasks.append(asyncio.create_task(acquire(req)))
            last_request = time.monotonic()
        elif kind == "sleep":
            await asyncio.sleep(x / 1000)
        elif tasks:
            i = min(int(x * len(tasks)), len(tasks) - 1)
            requests[i].cancelled = tasks[i].cancel() or requests[i].cancelled
    # Every acquire that was not cancelled completes, and in bounded time: after the last
    # request, at most all the costs have to be refilled.
    bound = (last_request - start) + sum(costs) / rate + spec.slack * len(costs) + 0.5
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=bound)
        assert not pending, "an acquire never completed"
    assert time.monotonic() - last_request <= sum(costs) / rate + sleeps + spec.slack + 0.1
    assert bucket.waiting == 0
    for req, task in zip(requests, tasks, strict=True):
        if req.cancelled:
            # cancel() returned True: the task ends cancelled and never counts as admitted,
            # even when the bucket had already granted it (its tokens went back).
            assert task.cancelled()
            assert req.admitted_at is None
        else:
            assert task.done() and not task.cancelled() and task.exception() is None
            assert req.admitted_at is not None
    # Budget: over any window of admissions, at most capacity + refill * duration.
    for i, first in enumerate(admitted):
        assert first.admitted_at is not None
        total = 0.0
        for later in admitted[i:]:
            assert later.admitted_at is not None
            total += later.cost
            window = later.admitted_at - first.admitted_at + RESUME_SLACK
            assert total <= spec.capacity + rate * window + 1e-6, (i, total, window)
    # FIFO: a request is admitted after every earlier one, unless it found no queue (the
    # earlier ones were already granted and only had to resume).
    for a in admitted:
        for b in admitted:
            if a.seq < b.seq and b.admitted_seq is not None and a.admitted_seq is not None:
                assert b.admitted_seq > a.admitted_seq or b.waiting_before == 0, (a, b)
    # And the bucket never holds more than its capacity.
    assert bucket.available <= spec.capacity + 1e-9


@settings(FAST, max_examples=25)
@given(spec=buckets)
def test_token_bucket_budget_fifo_cancellation_and_liveness(spec: Bucket) -> None:
    asyncio.run(run_bucket(spec))


@settings(FAST, max_examples=50)
@given(capacity=st.floats(0.1, 1e6), over=st.floats(1e-6, 1e6))
def test_token_bucket_rejects_a_cost_above_capacity(capacity: float, over: float) -> None:
    async def go() -> None:
        bucket = TokenBucket(capacity, 1.0)
        cost = capacity + max(over, capacity * 1e-9)
        if cost > capacity:
            with pytest.raises(ConfigError):
                await bucket.acquire(cost)
        assert bucket.waiting == 0

    asyncio.run(go())


async def test_cancelled_in_the_tick_it_was_granted_gives_its_tokens_back() -> None:
    bucket = TokenBucket(capacity=10, refill_rate=0.01)  # refills far slower than this test
    await bucket.acquire(5)
    big = asyncio.create_task(bucket.acquire(10))
    small = asyncio.create_task(bucket.acquire(3))
    await asyncio.sleep(0)
    assert bucket.waiting == 2
    before = bucket.available
    # Cancelling the head wakes the queue: `small` is granted while the cancelled `big`
    # unwinds; cancel it in that same tick, before it resumes.
    big.cancel()
    await asyncio.sleep(0)
    small.cancel()
    with pytest.raises(asyncio.CancelledError):
        await small
    with pytest.raises(asyncio.CancelledError):
        await big
    assert bucket.waiting == 0
    assert before <= bucket.available < before + 0.01  # small's 3 tokens came back
