#!/usr/bin/env python
"""Client-side cost of llmplug against raw httpx2 (the floor) and the openai SDK.

    python bench/bench_client.py              # full run, both servers (~7 minutes on 2 cores)
    python bench/bench_client.py --quick      # short run, noisier numbers
    python bench/bench_client.py --json out.json
    python bench/bench_client.py --markdown   # the results as Markdown tables (for a README)
    python bench/bench_client.py --api responses   # only the Responses API cells
    python bench/bench_client.py --profile "stream, 64 in flight"   # cProfile llmplug's cell
    python bench/bench_client.py --profile "responses stream, 64 in flight"
    python bench/bench_client.py --server chunked   # only the server that sends an event per write

Measured:

1. Client CPU per call (``time.process_time()`` around a batch, after a warm-up) for the same
   work: get the reply text, or iterate every chunk of a 20-chunk stream and join the text.
   Twelve cells: {Chat Completions, Responses API, Anthropic Messages} x {no stream, 20-chunk
   stream} x {one at a time, 64 in flight} (no openai SDK cell on Anthropic Messages); each
   cell is repeated and the median reported; clients run interleaved so that machine noise
   spreads evenly. On the Responses API llmplug is ``OpenAIResponsesCompatible``,
   raw httpx2 POSTs to ``/responses`` (walking ``output[].content[]``, or joining the
   ``response.output_text.delta`` events up to ``response.completed``) and the SDK is
   ``client.responses.create()``.
2. Import time: median of fresh interpreters running ``import llmplug`` (and ``import openai``),
   bytecode cached as from an installed wheel.
3. Memory per in-flight stream: in a fresh interpreter per client, 1,000 streams are held open
   at once against a reply that sends one event and then waits; the RSS growth once every
   stream has its first event, divided by the number of streams. They are opened 50 at a time
   (``--wave``): a burst of 1,000 connects overflows the test server's accept queue.

The servers run in a separate process, so the CPU time of this process is the clients' alone.
One run measures two by default (``--server burst,chunked``): ``burst`` is ``sse_server.py
--burst``, which writes a whole stream in one write and one HTTP chunk, as a proxy that buffers
does (or a fast local model whose events leave together): the client reads all of a reply's
events in one read and splits them itself. ``chunked`` is ``sse_server.py``, which writes each
event on its own and pauses between events (1 ms; 10 ms at 64 in flight, so that 64 streams
stay within what the client takes in), as a provider does: the client reads each event on its
own, and its per-read costs are paid per event. The first server gets every cell, the second
only the stream cells (whole bodies are one write on both). ``test`` is
``llmplug.testing.LLMTestServer``: a whole stream in one write, one HTTP chunk per event.

Every client sends the same JSON body and gets the same reply bytes (only the id and timestamp
values differ): the same text in the same 20 chunks, checked before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager, suppress
from dataclasses import dataclass, field, replace
from importlib import metadata
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import httpx2
    import openai
    from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
    from openai.types.responses import ResponseInputParam

    from llmplug import LLMInterface

MODEL = "bench-model"
#: Requests for this model get a stream that sends one event and then waits (memory test).
STALL_MODEL = "bench-stall"
API_KEY = "sk-bench"
PROMPT = "Write two sentences about a fox and a dog."
TEXT = (
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "sipping coffee and wondering why the dog never chases anything anymore. Later that "
    "evening the fox returns, curious, and the old dog finally lifts one ear in reply."
)
CHUNKS = 20
#: Fixed usage: otherwise the server derives prompt_tokens from the request body's length.
USAGE = {"prompt_tokens": 14, "completion_tokens": 45, "total_tokens": 59}
FIRST_EVENT = (
    b'data: {"id":"chatcmpl-stall","object":"chat.completion.chunk","created":0,'
    b'"model":"bench-stall","choices":[{"index":0,"delta":{"role":"assistant",'
    b'"content":"Hello"},"finish_reason":null}]}\n\n'
)
CLIENTS = ("llmplug", "httpx2", "openai")
#: The wire formats: OpenAI Chat Completions, the OpenAI Responses API, and Anthropic Messages
#: (the llmplug-anthropic plugin; no openai SDK cell there).
APIS = ("chat", "responses", "anthropic")
API_NAMES = {"chat": "Chat Completions", "responses": "Responses", "anthropic": "Anthropic"}
CONCURRENCY = 64
#: llmplug's target against raw httpx2: within 1.25x on whole bodies, 1.10x on streams.
TARGET_RATIO = 1.25
STREAM_TARGET_RATIO = 1.10
#: The servers: ``burst`` (sse_server.py, a whole stream in one write and one HTTP chunk),
#: ``chunked`` (sse_server.py, each event its own write, paced) and ``test`` (LLMTestServer, a
#: whole stream in one write, an HTTP chunk per event).
SERVERS = ("burst", "chunked", "test")
SERVER_NAMES = {
    "burst": "a stream in one write",
    "chunked": "an event per write",
    "test": "LLMTestServer",
}
SERVER_START_TIMEOUT = 30.0
FIRST_EVENTS_TIMEOUT = 120.0


def _raise_nofile(want: int = 8192) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# -- the server process -----------------------------------------------------------------------


def _serve(conn: Connection, kind: str) -> None:
    """The spawned server process: serve until told to stop or until the parent goes away."""
    server: Any
    try:
        _raise_nofile()
        from llmplug.testing import Raw, RecordedRequest, Reply

        reply = Reply(text=TEXT, chunks=CHUNKS, usage=USAGE)
        if kind in ("chunked", "burst"):
            from sse_server import ChunkedSSEServer

            server = ChunkedSSEServer(reply, burst=kind == "burst", stall=STALL_MODEL)
        else:
            from llmplug.testing import LLMTestServer
            from llmplug.testing._server import ReplyLike

            server = LLMTestServer(record=False)
            server.default = reply
            stall = Raw(chunks=[FIRST_EVENT, b"data: [DONE]\n\n"], chunk_delay=3600.0)

            def handler(rec: RecordedRequest) -> ReplyLike | None:
                return stall if rec.model == STALL_MODEL else None

            server.handler = handler
        server.start()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise
    conn.send(("ok", server.base_url))
    try:
        while (msg := conn.recv()) != "stop":  # EOFError when the parent died
            if msg[0] == "gap" and kind == "chunked":
                server.gap = msg[1]
            conn.send("ok")
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        server.stop()


@dataclass
class BenchServer:
    """The server process's address, and its pause between stream events (chunked only)."""

    base_url: str
    kind: str
    _conn: Connection

    def set_gap(self, seconds: float) -> None:
        self._conn.send(("gap", seconds))
        self._conn.recv()


#: The chunked server's pause between two events of a stream, by calls in flight: long enough
#: that the client is idle when each event arrives and reads it on its own, as from a provider
#: (at 64 in flight, 10 ms is 6,400 events a second: well under what one core can take in),
#: short enough to keep a run brief.
CHUNKED_GAP = {1: 0.001, CONCURRENCY: 0.010}


@contextmanager
def bench_server(kind: str = "test") -> Iterator[BenchServer]:
    """Run the server in a spawned process; yield its handle; always end the process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, kind), name="bench-server", daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(SERVER_START_TIMEOUT):
            raise RuntimeError(f"the server process did not start in {SERVER_START_TIMEOUT}s")
        try:
            status, value = parent.recv()
        except EOFError:
            raise RuntimeError(f"the server process died (exit code {proc.exitcode})") from None
        if status != "ok":
            raise RuntimeError(f"the server process failed to start:\n{value}")
        yield BenchServer(str(value), kind, parent)
    finally:
        with suppress(OSError, ValueError):
            parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()


# -- the three clients ------------------------------------------------------------------------


class Client(Protocol):
    name: str

    async def complete(self) -> str: ...

    async def stream(self) -> str: ...

    async def hold(self, on_first: Callable[[], None]) -> None:
        """Open a stream, call on_first() at its first event, then wait until cancelled."""

    async def aclose(self) -> None: ...


def _messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


class LLMPlugClient:
    name = "llmplug"

    def __init__(self, base_url: str, model: str = MODEL, api: str = "chat") -> None:
        from llmplug import (
            APIKeyPool,
            LLMInterface,
            OpenAICompatible,
            OpenAIResponsesCompatible,
            TextDelta,
        )

        self._text_delta = TextDelta
        cls = OpenAIResponsesCompatible if api == "responses" else OpenAICompatible
        wire = "anthropic-messages" if api == "anthropic" else None
        self.llm: LLMInterface = (LLMInterface if wire else cls)(
            APIKeyPool([API_KEY], "bench"),
            model,
            base_url,
            rate_limit_capacity=1e9,
            rate_limit_refill_rate=1e9,
            wire=wire,
        )
        self.messages = _messages()

    async def complete(self) -> str:
        return (await self.llm.chat(self.messages)).text

    async def stream(self) -> str:
        parts: list[str] = []
        async for event in self.llm.chat_stream(self.messages):
            if isinstance(event, self._text_delta):
                parts.append(event.text)
        return "".join(parts)

    async def hold(self, on_first: Callable[[], None]) -> None:
        # chat_stream() is an async generator typed as AsyncIterator (no aclose() for mypy).
        stream = cast("AsyncGenerator[object, None]", self.llm.chat_stream(self.messages))
        async with aclosing(stream) as events:
            async for _ in events:
                on_first()
                await asyncio.Future()

    async def aclose(self) -> None:
        await self.llm.aclose()


class HttpxClient:
    """What a user writes by hand with httpx2."""

    name = "httpx2"

    def __init__(self, base_url: str, model: str = MODEL, api: str = "chat") -> None:
        import httpx2

        self.client: httpx2.AsyncClient = httpx2.AsyncClient(
            limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=100),
            timeout=httpx2.Timeout(600.0, connect=10.0),
        )
        self.url = base_url + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.body: dict[str, Any] = {"model": model, "messages": _messages()}
        self.stream_body: dict[str, Any] = {
            **self.body,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def complete(self) -> str:
        response = await self.client.post(self.url, json=self.body, headers=self.headers)
        response.raise_for_status()
        return str(response.json()["choices"][0]["message"]["content"])

    async def stream(self) -> str:
        parts: list[str] = []
        async with self.client.stream(
            "POST", self.url, json=self.stream_body, headers=self.headers
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:"):  # "event:" lines repeat the type the data carries
                    self.take(line, parts)
        return "".join(parts)

    def take(self, line: str, parts: list[str]) -> None:
        """One ``data:`` line of a stream: the text it adds goes to ``parts``."""
        data = line[5:].strip()
        if data == "[DONE]":
            return  # read on to the end of the body, so the connection is reused
        for choice in json.loads(data)["choices"]:
            content = choice["delta"].get("content")
            if content:
                parts.append(content)

    async def hold(self, on_first: Callable[[], None]) -> None:
        async with self.client.stream(
            "POST", self.url, json=self.stream_body, headers=self.headers
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    json.loads(line[5:])
                    on_first()
                    await asyncio.Future()

    async def aclose(self) -> None:
        await self.client.aclose()


class HttpxResponsesClient(HttpxClient):
    """The same by hand on the Responses API: the body llmplug's ``openai-responses`` wire
    sends for one user message (``input`` items, ``"stream": true`` when streaming)."""

    def __init__(self, base_url: str, model: str = MODEL, api: str = "responses") -> None:
        super().__init__(base_url, model, api)
        self.url = base_url + "/responses"
        self.body = {"model": model, "input": _messages()}
        self.stream_body = {**self.body, "stream": True}

    async def complete(self) -> str:
        response = await self.client.post(self.url, json=self.body, headers=self.headers)
        response.raise_for_status()
        parts: list[str] = []
        for item in response.json()["output"]:
            if item["type"] == "message":
                for content in item["content"]:
                    if content["type"] == "output_text":
                        parts.append(content["text"])
        return "".join(parts)

    def take(self, line: str, parts: list[str]) -> None:
        event = json.loads(line[5:])
        kind = event["type"]
        if kind == "response.output_text.delta":
            parts.append(event["delta"])
        elif kind in ("response.failed", "response.incomplete", "error"):
            raise RuntimeError(f"the stream ended with {kind}: {line[:200]}")
        # response.completed: read on to the end of the body, so the connection is reused


class HttpxAnthropicClient(HttpxClient):
    """The same by hand on Anthropic Messages: the body llmplug's ``anthropic-messages`` wire
    sends for one user message (``max_tokens`` is required: the plugin's default)."""

    def __init__(self, base_url: str, model: str = MODEL, api: str = "anthropic") -> None:
        super().__init__(base_url, model, api)
        self.url = base_url + "/messages"
        self.headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
        self.body = {"model": model, "messages": _messages(), "max_tokens": 4096}
        self.stream_body = {**self.body, "stream": True}

    async def complete(self) -> str:
        response = await self.client.post(self.url, json=self.body, headers=self.headers)
        response.raise_for_status()
        blocks = response.json()["content"]
        return "".join(b["text"] for b in blocks if b["type"] == "text")

    def take(self, line: str, parts: list[str]) -> None:
        event = json.loads(line[5:])
        kind = event["type"]
        if kind == "content_block_delta":
            if event["delta"]["type"] == "text_delta":
                parts.append(event["delta"]["text"])
        elif kind == "error":
            raise RuntimeError(f"the stream ended with an error: {line[:200]}")


class OpenAIClient:
    name = "openai"

    def __init__(self, base_url: str, model: str = MODEL, api: str = "chat") -> None:
        import openai

        self.client: openai.AsyncOpenAI = openai.AsyncOpenAI(
            base_url=base_url, api_key=API_KEY, max_retries=0
        )
        self.model = model
        self.messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": PROMPT}]

    async def complete(self) -> str:
        response = await self.client.chat.completions.create(
            model=self.model, messages=self.messages
        )
        return response.choices[0].message.content or ""

    async def _open_stream(self) -> openai.AsyncStream[ChatCompletionChunk]:
        return await self.client.chat.completions.create(
            model=self.model,
            messages=self.messages,
            stream=True,
            stream_options={"include_usage": True},
        )

    async def stream(self) -> str:
        parts: list[str] = []
        async with await self._open_stream() as stream:
            async for chunk in stream:
                if chunk.choices:
                    content = chunk.choices[0].delta.content
                    if content:
                        parts.append(content)
        return "".join(parts)

    async def hold(self, on_first: Callable[[], None]) -> None:
        async with await self._open_stream() as stream:
            async for _ in stream:
                on_first()
                await asyncio.Future()

    async def aclose(self) -> None:
        await self.client.close()


class OpenAIResponsesClient(OpenAIClient):
    def __init__(self, base_url: str, model: str = MODEL, api: str = "responses") -> None:
        super().__init__(base_url, model, api)
        self.input: ResponseInputParam = [{"role": "user", "content": PROMPT}]

    async def complete(self) -> str:
        response = await self.client.responses.create(model=self.model, input=self.input)
        return response.output_text

    async def stream(self) -> str:
        parts: list[str] = []
        stream = await self.client.responses.create(model=self.model, input=self.input, stream=True)
        async with stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    parts.append(event.delta)
        return "".join(parts)


def make_client(name: str, base_url: str, model: str = MODEL, api: str = "chat") -> Client:
    """A client of the given API (``hold()``, for the memory test, is Chat Completions only)."""
    if api not in APIS:
        raise ValueError(f"unknown api {api!r}")
    responses = api == "responses"
    if name == "llmplug":
        return LLMPlugClient(base_url, model, api)
    if name == "httpx2" and api == "anthropic":
        return HttpxAnthropicClient(base_url, model, api)
    if name == "httpx2":
        return (HttpxResponsesClient if responses else HttpxClient)(base_url, model, api)
    if name == "openai" and api != "anthropic":
        return (OpenAIResponsesClient if responses else OpenAIClient)(base_url, model, api)
    raise ValueError(f"unknown client {name!r}")


# -- CPU per call -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    label: str
    stream: bool
    concurrency: int
    api: str = "chat"

    @property
    def kind(self) -> str:
        """The cell without its API: "stream, 64 in flight"."""
        stream = "stream" if self.stream else "no stream"
        return f"{stream}, {self.concurrency} " + (
            "at a time" if self.concurrency == 1 else "in flight"
        )


CELLS = (
    Cell("no stream, 1 at a time", False, 1),
    Cell("no stream, 64 in flight", False, CONCURRENCY),
    Cell("stream, 1 at a time", True, 1),
    Cell("stream, 64 in flight", True, CONCURRENCY),
    Cell("responses no stream, 1 at a time", False, 1, "responses"),
    Cell("responses no stream, 64 in flight", False, CONCURRENCY, "responses"),
    Cell("responses stream, 1 at a time", True, 1, "responses"),
    Cell("responses stream, 64 in flight", True, CONCURRENCY, "responses"),
    Cell("anthropic no stream, 1 at a time", False, 1, "anthropic"),
    Cell("anthropic no stream, 64 in flight", False, CONCURRENCY, "anthropic"),
    Cell("anthropic stream, 1 at a time", True, 1, "anthropic"),
    Cell("anthropic stream, 64 in flight", True, CONCURRENCY, "anthropic"),
)


def target(cell: Cell) -> float:
    return STREAM_TARGET_RATIO if cell.stream else TARGET_RATIO


def clients_for(cell: Cell, clients: tuple[str, ...]) -> list[str]:
    """The clients that speak the cell's API (the openai SDK does not speak Anthropic's)."""
    return [n for n in clients if not (n == "openai" and cell.api == "anthropic")]


@dataclass
class Plan:
    sequential_calls: int
    concurrent_calls: int
    repeats: int
    import_runs: int
    streams: int
    wave: int = 50
    clients: tuple[str, ...] = CLIENTS
    cells: tuple[Cell, ...] = CELLS
    #: Streams from the chunked server take 1 ms per event at 1 in flight (about 30 ms each).
    paced: bool = False

    def calls(self, cell: Cell) -> int:
        n = self.sequential_calls if cell.concurrency == 1 else self.concurrent_calls
        if cell.stream:
            n = max(cell.concurrency, n // 2)  # a stream costs about twice a whole body
            if self.paced and cell.concurrency == 1:
                n //= 4  # and each costs several times more CPU when it comes paced
        return n - n % cell.concurrency


async def _run_calls(fn: Callable[[], Awaitable[str]], calls: int, concurrency: int) -> None:
    if concurrency == 1:
        for _ in range(calls):
            await fn()
        return

    async def worker(n: int) -> None:
        for _ in range(n):
            await fn()

    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))


async def cpu_per_call(client: Client, cell: Cell, calls: int) -> tuple[float, float]:
    """(client CPU us per call, wall seconds) of one batch, after a warm-up."""
    fn = client.stream if cell.stream else client.complete
    await _run_calls(fn, 2 * cell.concurrency if cell.concurrency > 1 else 50, cell.concurrency)
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await _run_calls(fn, calls, cell.concurrency)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / calls * 1e6, wall


async def check_clients(clients: list[Client], api: str = "chat") -> None:
    """Every client must see exactly TEXT, streamed or not."""
    for client in clients:
        for fn in (client.complete, client.stream):
            got = await fn()
            if got != TEXT:
                raise RuntimeError(f"{client.name}.{fn.__name__} ({api}) returned {got[:80]!r}...")


async def run_cpu(server: BenchServer, plan: Plan) -> dict[str, Any]:
    """Every batch gets a fresh client (closed afterwards): a pool left with 64 idle
    connections by an earlier cell otherwise changes the next cell's cost."""
    base_url = server.base_url
    samples: dict[str, dict[str, list[float]]] = {
        c.label: {name: [] for name in clients_for(c, plan.clients)} for c in plan.cells
    }
    walls: dict[str, dict[str, list[float]]] = {
        c.label: {name: [] for name in clients_for(c, plan.clients)} for c in plan.cells
    }
    for first in {c.api: c for c in plan.cells}.values():
        api = first.api
        clients = [make_client(n, base_url, api=api) for n in clients_for(first, plan.clients)]
        try:
            await check_clients(clients, api)
        finally:
            for client in clients:
                await client.aclose()
    width = max(len(c.label) for c in plan.cells)
    for rep in range(plan.repeats):
        for i, cell in enumerate(plan.cells):
            names = clients_for(cell, plan.clients)
            server.set_gap(CHUNKED_GAP[cell.concurrency])
            shift = (rep + i) % len(names)
            for name in names[shift:] + names[:shift]:
                client = make_client(name, base_url, api=cell.api)
                try:
                    us, wall = await cpu_per_call(client, cell, plan.calls(cell))
                finally:
                    await client.aclose()
                samples[cell.label][name].append(us)
                walls[cell.label][name].append(wall)
                print(
                    f"  [{rep + 1}/{plan.repeats}] {cell.label:<{width}} {name:<8} "
                    f"{us:8.1f} us/call  ({plan.calls(cell)} calls, {wall:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
    cells = {}
    for cell in plan.cells:
        med = {name: statistics.median(v) for name, v in samples[cell.label].items()}
        cells[cell.label] = {
            "api": cell.api,
            "kind": cell.kind,
            "target": target(cell),
            "calls": plan.calls(cell),
            "median_us": med,
            "samples_us": samples[cell.label],
            "wall_s": walls[cell.label],
        }
    return cells


# -- profiling --------------------------------------------------------------------------------


async def profile_cell(server: BenchServer, plan: Plan, label: str, top: int) -> None:
    import cProfile
    import pstats

    cell = next((c for c in plan.cells if c.label == label), None)
    if cell is None:
        raise SystemExit(f"no cell {label!r}; cells: {[c.label for c in plan.cells]}")
    server.set_gap(CHUNKED_GAP[cell.concurrency])
    client = make_client("llmplug", server.base_url, api=cell.api)
    try:
        await cpu_per_call(client, cell, cell.concurrency * 2)
        profiler = cProfile.Profile()
        profiler.enable()
        await _run_calls(
            client.stream if cell.stream else client.complete, plan.calls(cell), cell.concurrency
        )
        profiler.disable()
    finally:
        await client.aclose()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("llmplug", top)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    own = sum(entry[2] for key, entry in raw.items() if "llmplug" in key[0])
    print(f"llmplug's own code: {own * 1e3:.0f} ms of {total * 1e3:.0f} ms self time", end=" ")
    print(f"({own / total:.1%}); {own / plan.calls(cell) * 1e6:.0f} us per call")


# -- import time ------------------------------------------------------------------------------

_IMPORT_CODE = "import time; t=time.perf_counter(); import {0}; print(time.perf_counter()-t)"


def _import_once(module: str, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_CODE.format(module)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"import {module} failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def run_imports(runs: int, modules: tuple[str, ...] = ("llmplug", "openai")) -> dict[str, Any]:
    """Import time with bytecode cached, as from an installed wheel (pip compiles it): with
    PYTHONDONTWRITEBYTECODE set (as in some CI shells) and a source tree, every run would
    compile llmplug's sources again and measure the compiler. The bytecode goes to a
    directory of its own (PYTHONPYCACHEPREFIX), not into the tree."""
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = prefix
        for module in modules:
            _import_once(module, env)  # warm the bytecode and file caches
        samples: dict[str, list[float]] = {m: [] for m in modules}
        for _ in range(runs):
            for module in modules:
                samples[module].append(_import_once(module, env) * 1000)
    return {
        m: {"median_ms": statistics.median(v), "best_ms": min(v), "samples_ms": v}
        for m, v in samples.items()
    }


# -- memory per in-flight stream --------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _open_streams(client: Client, n: int, wave: int = 50) -> list[asyncio.Task[None]]:
    """Start n streams; return once each has its first event (or raise).

    They are opened in waves of `wave`, each wave once the previous one has its first events:
    the test server listens with asyncio's default backlog (100), and a burst of 1,000
    connects overflows the accept queue (the kernel then drops handshakes, and some clients
    see resets). All n streams are open at once when this returns."""
    got = 0
    target = 0
    wave_in = asyncio.Event()

    def on_first() -> None:
        nonlocal got
        got += 1
        if got >= target:
            wave_in.set()

    tasks: list[asyncio.Task[None]] = []
    deadline = time.monotonic() + FIRST_EVENTS_TIMEOUT
    while target < n:
        size = min(wave, n - target)
        target += size
        wave_in.clear()
        tasks += [asyncio.create_task(client.hold(on_first)) for _ in range(size)]
        waiter = asyncio.create_task(wave_in.wait())
        done, _ = await asyncio.wait(
            [waiter, *tasks],
            timeout=max(0.0, deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if waiter in done:
            continue
        waiter.cancel()
        await _close_streams(tasks)
        ended = [t for t in done if t is not waiter]
        if ended:
            exc = ended[0].exception()
            raise RuntimeError(f"a stream ended before its first event: {exc!r}") from exc
        raise RuntimeError(f"only {got} of {n} streams had their first event in time")
    return tasks


async def _close_streams(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _memory_child(name: str, base_url: str, n: int, wave: int) -> dict[str, Any]:
    client = make_client(name, base_url, STALL_MODEL)
    try:
        for _ in range(2):  # warm-up: imports, the pool, first-use caches
            await _close_streams(await _open_streams(client, 16))
        gc.collect()
        before = _rss()
        tasks = await _open_streams(client, n, wave or n)
        gc.collect()
        after = _rss()
        await _close_streams(tasks)
    finally:
        await client.aclose()
    return {"kib_per_stream": (after - before) / n / 1024, "rss_before": before, "rss_after": after}


def run_memory(base_url: str, plan: Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in plan.clients:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                name,
                base_url,
                str(plan.streams),
                str(plan.wave),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"memory run for {name} failed:\n{proc.stderr}")
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- report -----------------------------------------------------------------------------------


@dataclass
class Results:
    plan: dict[str, Any]
    env: dict[str, Any]
    #: server kind -> cell label -> the cell's results
    cpu: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def print_report(r: Results) -> None:
    for kind, cpu in r.cpu.items():
        names = list(next(iter(cpu.values()))["median_us"])
        base = "httpx2" if "httpx2" in names else None
        print(f"server: {kind} ({SERVER_NAMES[kind]})")
        width = max(len("cell"), *(len(label) for label in cpu)) + 1
        head = f"{'cell':<{width}}" + "".join(f"{n + ' us/call':>17}" for n in names)
        others = [n for n in names if n != base] if base else []
        head += "".join(f"{n + '/' + base:>16}" for n in others if base)
        print(head)
        print("-" * len(head))
        for label, cell in cpu.items():
            med = cell["median_us"]
            line = f"{label:<{width}}" + "".join(
                f"{med[n]:>17.1f}" if n in med else f"{'-':>17}" for n in names
            )
            for n in others:
                if n not in med:
                    line += f"{'-':>15} "
                    continue
                ratio = med[n] / med[base] if base else 0.0
                mark = " " if n != "llmplug" else ("*" if ratio > cell["target"] else " ")
                line += f"{ratio:>15.2f}{mark}"
            print(line)
        print(
            f"(median of {r.plan['repeats']} batches; client CPU per call; * = llmplug above "
            f"{TARGET_RATIO:.2f}x raw httpx2, {STREAM_TARGET_RATIO:.2f}x on streams)"
        )
    if r.imports:
        for m, v in r.imports.items():
            print(
                f"import {m:<10} {v['median_ms']:7.1f} ms  (median of {len(v['samples_ms'])}; "
                f"best {v['best_ms']:.1f} ms)"
            )
    if r.memory:
        print()
        for name, v in r.memory.items():
            print(
                f"memory {name:<10} {v['kib_per_stream']:7.1f} KiB per in-flight stream "
                f"({r.plan['streams']} open at once, opened {r.plan['wave'] or 'all'} at a time)"
            )


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown_report(r: Results) -> str:
    """The results as Markdown tables, ready to paste into a README."""
    out: list[str] = []
    versions = ", ".join(
        f"{d} {v}" for d, v in r.env["versions"].items() if d != "msgspec" and v != "-"
    )
    if r.cpu:
        missed = False
        for kind, cpu in r.cpu.items():
            names = list(next(iter(cpu.values()))["median_us"])
            base = "httpx2" if "httpx2" in names else None
            others = [n for n in names if n != base] if base else []
            head = ["API", "server", "call", *(f"{n} µs/call" for n in names)]
            head += [f"{n} / {base}" for n in others]
            if out:
                out.append("")
            out.append(_md_row(head))
            out.append(_md_row(["---", "---", "---"] + ["---:"] * (len(head) - 3)))
            for cell in cpu.values():
                med = cell["median_us"]
                row = [API_NAMES.get(cell["api"], cell["api"]), SERVER_NAMES[kind], cell["kind"]]
                row += [f"{med[n]:,.0f}" if n in med else "-" for n in names]
                for n in others:
                    if n not in med:
                        row.append("-")
                        continue
                    ratio = med[n] / med[base] if base else 0.0
                    text = f"{ratio:.2f}x"
                    if n == "llmplug" and ratio > cell["target"]:
                        text, missed = f"**{text}**", True
                    row.append(text)
                out.append(_md_row(row))
        out.append("")
        note = (
            f"Client CPU per call (µs, lower is better), median of {r.plan['repeats']} "
            f"batch{'es' if r.plan['repeats'] != 1 else ''}; a stream is 20 text chunks, "
            "iterated to its end and joined; "
            f"64 in flight = {CONCURRENCY} concurrent calls on one client. "
            f"Target: llmplug within {TARGET_RATIO:.2f}x of raw httpx2, {STREAM_TARGET_RATIO:.2f}x "
            "on streams"
        )
        out.append(note + (" (missed in **bold**)." if missed else "."))
    if r.imports or r.memory:
        if out:
            out.append("")
        names = list(dict.fromkeys([*r.memory, *(m for m in r.imports if m != "llmplug")]))
        names = ["llmplug", *(n for n in names if n != "llmplug")]
        out.append(_md_row(["", *names]))
        out.append(_md_row(["---", *(["---:"] * len(names))]))
        if r.imports:
            row = ["import time (ms)"]
            row += [f"{r.imports[n]['median_ms']:.0f}" if n in r.imports else "-" for n in names]
            out.append(_md_row(row))
        if r.memory:
            row = ["memory per in-flight stream (KiB)"]
            row += [f"{r.memory[n]['kib_per_stream']:.1f}" if n in r.memory else "-" for n in names]
            out.append(_md_row(row))
        out.append("")
        notes = []
        if r.imports:
            runs = len(next(iter(r.imports.values()))["samples_ms"])
            best = ", ".join(f"{m} {v['best_ms']:.0f} ms" for m, v in r.imports.items())
            notes.append(
                f"Import time: median of {runs} fresh interpreters, bytecode cached (best: {best})."
            )
        if r.memory:
            notes.append(
                f"Memory: RSS growth with {r.plan['streams']} Chat Completions streams open at "
                "once, per stream."
            )
        out.append(" ".join(notes))
    out.append("")
    servers = []
    for kind in r.cpu or [r.env["servers"][0]]:
        if kind == "chunked":
            gap = r.env.get("gap")
            pace = (
                "1 ms apart, 10 ms at 64 in flight" if gap is None else f"{gap * 1000:g} ms apart"
            )
            servers.append(f"an event per write: `bench/sse_server.py`, each its own write, {pace}")
        elif kind == "burst":
            servers.append(
                "a stream in one write: `bench/sse_server.py --burst`, a whole stream in one "
                "write and one HTTP chunk (whole bodies are one write on both)"
            )
        else:
            servers.append("`llmplug.testing.LLMTestServer`, a stream in one write")
    server = "; ".join(servers)
    out.append(
        f"Python {r.env['python']}, {r.env['cpus']} CPUs, {platform.system()}; {versions}; "
        f"servers ({server}) in another process."
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    # The client as a user without an observer plugin runs it: the dev venv has llmplug-otel
    # installed, whose cost bench/groups.py measures on its own ("single+otel").
    os.environ.setdefault("LLMPLUG_DISABLE_PLUGINS", "otel")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="short run: noisier numbers")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="print the results as Markdown tables")
    p.add_argument(
        "--api", default=",".join(APIS), help="comma-separated: chat,responses,anthropic"
    )
    p.add_argument("--clients", default=",".join(CLIENTS), help="comma-separated subset")
    p.add_argument(
        "--server",
        default="burst,chunked",
        help="comma-separated, measured in this order in one run: burst (bench/sse_server.py "
        "--burst: a whole stream in one write and one HTTP chunk), chunked (bench/sse_server.py: "
        "each event its own write, 1 ms apart, 10 ms at 64 in flight), test (LLMTestServer: a "
        "stream in one write, an HTTP chunk per event). The first server gets every cell and the "
        "memory test; the others only the stream cells (their whole bodies are the same bytes "
        "in one write)",
    )
    p.add_argument("--repeats", type=int, help="batches per cell and client (median taken)")
    p.add_argument(
        "--calls", type=int, help="calls per one-at-a-time batch (64 in flight: 2x; streams: half)"
    )
    p.add_argument("--skip", default="", help="comma-separated: cpu,imports,memory")
    p.add_argument(
        "--wave",
        type=int,
        default=50,
        help="memory test: open the streams this many at a time (0: all at once; the test "
        "server's listen backlog is 100, so a burst of 1,000 connects overflows it)",
    )
    p.add_argument(
        "--gap",
        type=float,
        help="chunked server: seconds between events in every cell (0: just yield to its loop)",
    )
    p.add_argument("--profile", metavar="CELL", help="cProfile llmplug on one cell and exit")
    p.add_argument(
        "--memory-child", nargs=4, metavar=("CLIENT", "URL", "N", "WAVE"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)

    _raise_nofile()
    if args.memory_child:
        name, url, n, wave = args.memory_child
        print(json.dumps(asyncio.run(_memory_child(name, url, int(n), int(wave)))))
        return 0

    seq = args.calls or (300 if args.quick else 1200)
    plan = Plan(
        sequential_calls=seq,
        concurrent_calls=CONCURRENCY * max(4, -(-seq * 2 // CONCURRENCY)),
        repeats=args.repeats or (1 if args.quick else 3),
        import_runs=5 if args.quick else 15,
        streams=200 if args.quick else 1000,
        wave=args.wave,
        clients=tuple(c for c in args.clients.split(",") if c),
    )
    servers = [k for k in args.server.split(",") if k]
    if not servers or set(servers) - set(SERVERS):
        p.error(f"unknown server in {args.server!r} (known: {', '.join(SERVERS)})")
    for c in plan.clients:
        if c not in CLIENTS:
            p.error(f"unknown client {c!r} (known: {', '.join(CLIENTS)})")
    apis = {a for a in args.api.split(",") if a}
    if unknown := apis - set(APIS):
        p.error(f"unknown api {sorted(unknown)} (known: {', '.join(APIS)})")
    plan.cells = tuple(c for c in CELLS if c.api in apis)
    if args.profile and all(c.label != args.profile for c in plan.cells):
        p.error(f"no cell {args.profile!r}; cells: {[c.label for c in plan.cells]}")
    skip = {s for s in args.skip.split(",") if s}
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "versions": {d: _version(d) for d in ("llmplug", "httpx2", "openai", "msgspec")},
        "servers": servers,
    }
    if args.gap is not None:
        env["gap"] = args.gap
        CHUNKED_GAP.update(dict.fromkeys(CHUNKED_GAP, args.gap))
    results = Results(plan={**plan.__dict__, "cells": [c.label for c in plan.cells]}, env=env)
    t0 = time.perf_counter()
    for i, kind in enumerate(servers):
        plan.paced = kind == "chunked"
        cells = plan.cells if i == 0 else tuple(c for c in plan.cells if c.stream)
        with bench_server(kind) as server:
            if args.profile:
                asyncio.run(profile_cell(server, plan, args.profile, 30))
                return 0
            if "cpu" not in skip and cells:
                results.cpu[kind] = asyncio.run(run_cpu(server, replace(plan, cells=cells)))
            if "memory" not in skip and i == 0:
                results.memory = run_memory(server.base_url, plan)
    if "imports" not in skip:
        results.imports = run_imports(plan.import_runs)
    print(f"(ran {time.perf_counter() - t0:.0f}s; {env})", file=sys.stderr)
    if args.markdown:
        print(markdown_report(results))
    else:
        print_report(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results.__dict__, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
