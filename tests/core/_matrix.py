"""The combination matrix's engine: one round of calls through a cell (wire x one interface or
a group x async or 16 threads x local bucket or Redis), streamed or not, under faults scripted
per prompt, and the invariants every cell must keep.

A round sends, concurrently, a few plain calls and one call per fault. The fault a request gets
depends only on its prompt and on how many requests of that prompt came before, never on which
key, member, thread or moment took it, so a streamed round and a ``chat()`` round of the same
cell must end alike: the same outcome per call, the same requests per call at the server, and
the same health in the books afterwards. The books themselves (key requests, errors and in
flight, group counters, usage, Redis leases) must equal what the server recorded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from llmplug import (
    APIKeyPool,
    Done,
    LLMError,
    LLMInterface,
    ModelGroup,
    StreamError,
)
from llmplug._vocab._errors import status_error_class
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest
from llmplug.testing._server import ReplyLike

__all__ = [
    "FAULTS",
    "MODES",
    "TARGETS",
    "WIRES",
    "Cell",
    "Outcome",
    "Round",
    "Script",
    "call_once",
    "kind_of",
    "run_cell",
]

#: The matrix's wires, by the short name the issue gives them.
WIRES = {"chat": "openai-chat", "responses": "openai-responses", "anthropic": "anthropic-messages"}
TARGETS = ("one", "group")
MODES = ("async", "threads")
#: One call of each per round, beside ``PLAIN`` calls without a fault.
FAULTS = ("429", "5xx", "instream", "instream400", "stall")
PLAIN = 4
THREADS = 16
#: The stalled call's own total_timeout (every request of it stalls): it must end by then.
STALL_S = 0.5
#: Every other call's total_timeout, the interfaces' own: answered in milliseconds, they must
#: never come near it.
CALL_LIMIT = 5.0
#: What "within total_timeout" allows for on a shared 2-core machine: a bound, not a speed check.
SLACK = 1.0
#: A hang guard for a whole round.
HANG = 60.0


@dataclass(frozen=True)
class Cell:
    wire: str
    target: str
    mode: str
    #: ``rate_limit_backend`` of every interface (None: the local bucket).
    backend: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    prompt: str
    fault: str
    #: "ok", or the error's kind (see `kind_of`).
    kind: str
    text: str | None
    elapsed: float
    limit: float
    #: The error's text, for the report of a broken invariant.
    detail: str = ""


def kind_of(exc: LLMError) -> str:
    """An error's class name; a stream's error before any output by the status it stands for,
    as a ``chat()`` gets that status as an HTTP error (a ``StreamError`` of status 400 is a
    ``BadRequestError`` there)."""
    if isinstance(exc, StreamError) and exc.status is not None:
        return status_error_class(exc.status).__name__
    return type(exc).__name__


def fault_of(prompt: str) -> str:
    parts = prompt.split(":")
    return parts[1] if len(parts) == 3 else "ok"


class Script:
    """The server's handler: each prompt's fault, and what was served to whom."""

    def __init__(self, wire: str) -> None:
        self.wire = wire
        self._lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        #: Every request answered with a fault (the very objects in ``server.requests``).
        self.faulted: list[RecordedRequest] = []

    def __call__(self, rec: RecordedRequest) -> ReplyLike | None:
        prompt = rec.last_user_text
        fault = fault_of(prompt)
        with self._lock:
            self.seen[prompt] += 1
            reply = self._reply(fault, first=self.seen[prompt] == 1)
            if reply is not None:
                self.faulted.append(rec)
        return reply

    def _reply(self, fault: str, *, first: bool) -> ReplyLike | None:
        if fault == "429" and first:
            return Error(status=429, message="slow down", headers={"retry-after": "30"})
        if fault == "5xx" and first:
            return Error(status=503, message="busy")
        if fault == "instream" and first:
            # The same failure, said as each wire says it inside a stream; a request that
            # does not stream gets it as an HTTP 503.
            return Error(status=503, message="overloaded", in_stream_after=0, **self._code(503))
        if fault == "instream400":
            return Error(status=400, message="bad input", in_stream_after=0, **self._code(400))
        if fault == "stall":
            return Fault("stall_after_headers", seconds=30.0)
        return None

    def _code(self, status: int) -> dict[str, Any]:
        if self.wire == "openai-chat":
            return {"code": status}  # OpenRouter's numeric code
        if self.wire == "openai-responses":
            name = "server_error" if status >= 500 else "invalid_request_error"
            return {"code": name, "type": name}
        return {}  # Anthropic's error type follows the status

    def served(
        self, *, key: str | None = None, model: str | None = None, faults: tuple[str, ...] = ()
    ) -> int:
        """Faults served (of ``faults``, else any) to ``key`` or ``model``."""
        with self._lock:
            return sum(
                1
                for rec in self.faulted
                if key in (None, rec.api_key)
                and model in (None, rec.model)
                and (not faults or fault_of(rec.last_user_text) in faults)
            )

    def answered(self, rec: RecordedRequest) -> bool:
        """Whether ``rec`` got an answer, not a fault."""
        with self._lock:
            return all(rec is not f for f in self.faulted)


@dataclass
class Round:
    """One round's target and everything needed to check its books."""

    tag: str
    stream: bool
    target: Any
    #: Each interface, with its keys and its model name.
    interfaces: list[tuple[LLMInterface, list[str], str]]
    group: ModelGroup | None
    outcomes: list[Outcome] = field(default_factory=list)

    def prompts(self) -> list[str]:
        plain = [f"{self.tag}:ok:{i}" for i in range(PLAIN)]
        return plain + [f"{self.tag}:{fault}:0" for fault in FAULTS]


def build(cell: Cell, server: LLMTestServer, tag: str, stream: bool, prefix: str) -> Round:
    """The round's target: one interface on two keys that retries, or a group of two members
    on two keys each that do not retry, so that every fault moves the call on."""

    def interface(name: str, retries: int) -> tuple[LLMInterface, list[str], str]:
        keys = [f"sk-{tag}-{name}-{k}" for k in range(2)]
        model = f"{tag}-{name}"
        backend = None
        if cell.backend is not None:
            backend = {**cell.backend, "prefix": f"{prefix}-{tag}"}
        llm = LLMInterface(
            APIKeyPool(keys, f"p-{tag}", shared=False),
            model,
            server.base_url,
            max_retries=retries,
            retry_delay=0.001,
            rate_limit_capacity=10_000,
            rate_limit_refill_rate=10_000.0,
            wire=WIRES[cell.wire],
            total_timeout=CALL_LIMIT,
            rate_limit_backend=backend,
        )
        return llm, keys, model

    if cell.target == "one":
        one = interface("one", 2)
        return Round(tag, stream, one[0], [one], None)
    members = [interface("a", 0), interface("b", 0)]
    # No circuit opens within a round: which member a fault lands on is the order the calls
    # happened to take, so an ejection would make the two rounds differ by chance.
    group = ModelGroup([m[0] for m in members], name=f"g-{tag}", failure_threshold=100)
    return Round(tag, stream, group, members, group)


async def call_once(target: Any, prompt: str, stream: bool, **params: Any) -> Outcome:
    """One call; a stream is read up to its ``Done`` and left there, as ``llmplug chat`` does.
    Only llmplug's documented errors count as an ending: anything else fails the test."""
    limit = float(params.get("total_timeout", CALL_LIMIT))
    t0 = time.monotonic()
    text: str | None = None
    kind = "ok"
    detail = ""
    try:
        if stream:
            async with aclosing(target.chat_stream(prompt, **params)) as events:
                async for event in events:
                    if isinstance(event, Done):
                        text = event.completion.text
                        break
            if text is None:
                kind = "no Done"
        else:
            text = (await target.chat(prompt, **params)).text
    except LLMError as exc:
        kind = kind_of(exc)
        detail = str(exc)[:300]
    elapsed = time.monotonic() - t0
    return Outcome(prompt, fault_of(prompt), kind, text, elapsed, limit, detail)


def _params(prompt: str) -> dict[str, Any]:
    return {"total_timeout": STALL_S} if fault_of(prompt) == "stall" else {}


async def _run_async(rounds: list[Round]) -> None:
    jobs = [(r, p) for r in rounds for p in r.prompts()]
    async with asyncio.timeout(HANG):
        got = await asyncio.gather(
            *(call_once(r.target, p, r.stream, **_params(p)) for r, p in jobs)
        )
    for (r, _), outcome in zip(jobs, got, strict=True):
        r.outcomes.append(outcome)


def _run_threads(rounds: list[Round]) -> None:
    """Each call a sync call of its own thread: ``asyncio.run`` on a loop of its own, as a
    sync ``llm_function`` makes it."""
    jobs = [(r, p) for r in rounds for p in r.prompts()]
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [
            pool.submit(asyncio.run, call_once(r.target, p, r.stream, **_params(p)))
            for r, p in jobs
        ]
        _, pending = wait(futures, timeout=HANG)
        assert not pending, f"{len(pending)} of {len(futures)} sync calls never returned"
    for (r, _), future in zip(jobs, futures, strict=True):
        r.outcomes.append(future.result())


# -- the invariants --------------------------------------------------------------------------


def expected(fault: str) -> tuple[str, int]:
    """What a call of each fault ends with, and how many requests it takes, the same for one
    interface (it retries on its other key) and for a group (it moves on to the other member)."""
    return {
        "ok": ("ok", 1),
        "429": ("ok", 2),
        "5xx": ("ok", 2),
        "instream": ("ok", 2),
        "instream400": ("BadRequestError", 1),
        # The call's total_timeout is the call's, not each member's: one stalled request.
        "stall": ("APITimeoutError", 1),
    }[fault]


class Violations(list[str]):
    """Every broken invariant of a cell, gathered so that one failure shows them all."""

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.append(what)


def check_calls(r: Round, requests: list[RecordedRequest], bad: Violations) -> None:
    """Every call ended, with its answer or its documented error, within its total_timeout,
    after the number of requests its fault takes."""
    per_prompt = Counter(rec.last_user_text for rec in requests)
    for o in r.outcomes:
        kind, sent = expected(o.fault)
        where = f"{'stream' if r.stream else 'chat()'} {o.fault}"
        bad.check(o.elapsed <= o.limit + SLACK, f"{where}: took {o.elapsed:.2f}s > {o.limit}s")
        got = (o.kind, per_prompt[o.prompt])
        if got != (kind, sent):
            trail = [(rec.model, rec.api_key) for rec in requests if rec.last_user_text == o.prompt]
            bad.append(
                f"{where}: ended {got}, expected {(kind, sent)}; sent to {trail}; {o.detail}"
            )
        if o.kind == "ok":
            bad.check(o.text == f"echo: {o.prompt}", f"{where}: answered {o.text!r}")


def check_books(r: Round, requests: list[RecordedRequest], script: Script, bad: Violations) -> None:
    """The books equal what reached the server, and nothing is left in flight."""
    mine = [rec for rec in requests if rec.last_user_text.startswith(f"{r.tag}:")]
    by_key = Counter(rec.api_key for rec in mine)
    how = "stream" if r.stream else "chat()"
    for llm, keys, model in r.interfaces:
        rows = llm.key_pool.status()
        where = f"{how} {model}"
        flying = [row["in_flight"] for row in rows]
        bad.check(flying == [0, 0], f"{where}: keys in flight {flying}")
        sent = [row["requests"] for row in rows]
        bad.check(sent == [by_key[k] for k in keys], f"{where}: key requests {sent}")
        faults = [script.served(key=k) for k in keys]
        errors = [row["errors"] for row in rows]
        bad.check(errors == faults, f"{where}: key errors {errors}, faults served {faults}")
        answered = [rec for rec in mine if rec.model == model and script.answered(rec)]
        bad.check(
            llm.usage.calls == len(answered),
            f"{where}: usage counts {llm.usage.calls} calls of {len(answered)} answers",
        )
        words = sum(len(f"echo: {rec.last_user_text}".split()) for rec in answered)
        bad.check(
            llm.usage.output_tokens == words,
            f"{where}: usage counts {llm.usage.output_tokens} output tokens of {words}",
        )
    answers = sum(1 for o in r.outcomes if o.kind == "ok")
    if r.group is None:
        return
    bad.check(
        r.group.usage.calls == answers,
        f"{how}: group.usage counts {r.group.usage.calls} calls of {answers} answered",
    )
    status = r.group.status()
    for _, _, model in r.interfaces:
        row = status[f"p-{r.tag}/{model}"]
        where = f"{how} member {model}"
        bad.check(row["in_flight"] == 0, f"{where}: {row['in_flight']} in flight")
        to_member = sum(
            1 for rec in mine if rec.model == model and fault_of(rec.last_user_text) != "warm"
        )
        bad.check(row["requests"] == to_member, f"{where}: requests {row['requests']}")
        # Each fault that moved the call on counts against the member; a 400 is the
        # request's fault, never the member's. Whether a stall at the call's deadline
        # counts is left open: the call ends there either way.
        moved = script.served(model=model, faults=("429", "5xx", "instream"))
        stalled = script.served(model=model, faults=("stall",))
        bad.check(
            moved <= row["errors"] <= moved + stalled,
            f"{where}: errors {row['errors']}, moving faults served {moved} (+{stalled} stalls)",
        )


def signature(r: Round, requests: list[RecordedRequest]) -> dict[str, Any]:
    """What a streamed and a plain round must share: outcomes and requests per fault, and the
    health decisions in the books (which key or member took a fault may differ; how many and
    what followed may not)."""
    mine = [rec for rec in requests if rec.last_user_text.startswith(f"{r.tag}:")]
    rows = [row for llm, _, _ in r.interfaces for row in llm.key_pool.status()]
    sig: dict[str, Any] = {
        "outcomes": sorted((o.fault, o.kind) for o in r.outcomes),
        "requests": sorted(Counter(fault_of(rec.last_user_text) for rec in mine).items()),
        "key states": sorted((row["state"], row["cooldown_reason"] or "") for row in rows),
        "key errors": sum(row["errors"] for row in rows),
        "usage calls": sum(llm.usage.calls for llm, _, _ in r.interfaces),
    }
    if r.group is not None:
        members = list(r.group.status().values())
        sig["member states"] = sorted(m["state"] for m in members)
        sig["member errors"] = sum(m["errors"] for m in members)
        sig["group usage calls"] = r.group.usage.calls
    return sig


def check_parity(rounds: list[Round], requests: list[RecordedRequest], bad: Violations) -> None:
    stream, plain = (signature(r, requests) for r in rounds)
    for name in stream:
        bad.check(
            stream[name] == plain[name],
            f"stream and chat() differ in {name}: {stream[name]} != {plain[name]}",
        )


async def run_cell(
    cell: Cell,
    server: LLMTestServer,
    *,
    prefix: str = "m",
    settle: Callable[[Round], Awaitable[list[str]]] | None = None,
) -> None:
    """Run a streamed and a plain round of ``cell`` at once (separate books, separate keys),
    then check every invariant. ``settle`` runs on each round after its calls ended and
    before the books are read, and returns what it found broken (the Redis rows check the
    shared leases there)."""
    script = Script(WIRES[cell.wire])
    server.handler = script
    rounds = [build(cell, server, "s", True, prefix), build(cell, server, "c", False, prefix)]
    try:
        await _warm(rounds)
        if cell.mode == "async":
            await _dropped_interface(cell, server)
            await _run_async(rounds)
        else:
            await asyncio.to_thread(_run_threads, rounds)
        requests = list(server.requests)
        bad = Violations()
        for r in rounds:
            if settle is not None:
                bad.extend(await settle(r))
            check_calls(r, requests, bad)
            check_books(r, requests, script, bad)
        check_parity(rounds, requests, bad)
        assert not bad, "\n".join(bad)
    finally:
        for r in rounds:
            for llm, _, _ in r.interfaces:
                await llm.aclose()
                assert llm._transport.open_clients == 0


async def _warm(rounds: list[Round]) -> None:
    """One call per interface before the round: its first call loads the CA store (~50 ms
    of CPU), which on a shared 2-core machine under load could spend much of the stalled
    call's 0.5 s before its request is sent. Warm, the deadline is about the stall."""
    for r in rounds:
        for llm, _, model in r.interfaces:
            await llm.chat(f"{r.tag}:warm:{model}")
            await llm.aclose()


async def _dropped_interface(cell: Cell, server: LLMTestServer) -> None:
    """Before the round, on the same loop: an interface that made 30 concurrent calls and was
    dropped and collected (issue 17's repro). Nothing of it may touch the round's interfaces."""
    import gc

    gone = LLMInterface(
        APIKeyPool(["sk-gone"], "p-gone", shared=False),
        "gone",
        server.base_url,
        wire=WIRES[cell.wire],
        rate_limit_capacity=10_000,
        rate_limit_refill_rate=10_000.0,
        total_timeout=CALL_LIMIT,
    )
    await asyncio.gather(*(gone.chat(f"warm {i}") for i in range(30)))
    del gone
    gc.collect()
