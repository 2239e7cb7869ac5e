#!/usr/bin/env python
"""Client CPU per call of a ModelGroup of 3 members, and of the observer hooks.

    python bench/groups.py            # ~2 minutes on 2 cores
    python bench/groups.py --quick    # noisier
    python bench/groups.py --no-litellm

Three test servers (``python -m llmplug.testing``) run as separate processes, so this
process's CPU is the clients' alone. At 64 calls in flight, whole bodies and 20-chunk streams,
interleaved and repeated (median), client CPU per call of:

- ``single``: one ``OpenAICompatible`` on the first server, a registry with no observer (the
  hot path as it was before the observer hooks existed: only a flag is read);
- ``single+observer``: the same with a no-op ``observe_attempt``/``observe_call`` plugin (the
  price of building the records);
- ``single+otel``: the same with llmplug-otel and OpenTelemetry's default (no-op) providers;
- ``group``: a ``ModelGroup`` of three interfaces, one per server, ``least_loaded``;
- ``litellm-router``: LiteLLM's ``Router`` (``least-busy``) over the same three servers, run
  in the LiteLLM venv tests/servers/litellm/start.sh makes (skipped when it is absent).

Target: ``group`` / ``single`` <= 1.10.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import llmplug
from llmplug import (
    APIKeyPool,
    AttemptInfo,
    CallInfo,
    ModelGroup,
    OpenAICompatible,
    Registry,
    TextDelta,
    hookimpl,
)

CONCURRENCY = 64
PROMPT = "Write two sentences about a fox and a dog."
LITELLM_PY = Path.home() / ".cache/llmplug/litellm-1.108.7/bin/python"
TARGET = 1.10


@contextmanager
def test_server() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmplug.testing", "--port", "0", "--words", "40"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


class NoOp:
    @hookimpl
    def observe_attempt(self, info: AttemptInfo) -> None:
        pass

    @hookimpl
    def observe_call(self, info: CallInfo) -> None:
        pass


def registry(*extra: object) -> Registry:
    return Registry(entry_points=False, plugins=[*extra, *llmplug.default_plugins()])


def interface(url: str, provider: str, reg: Registry) -> OpenAICompatible:
    return OpenAICompatible(
        APIKeyPool([f"sk-{provider}"], provider, shared=False),
        "bench-model",
        url,
        rate_limit_capacity=1e9,
        rate_limit_refill_rate=1e9,
        registry=reg,
    )


Chatty = Any  # an interface or a group: both have chat() and chat_stream()


def calls_of(llm: Chatty, stream: bool) -> Callable[[], Awaitable[str]]:
    messages = [{"role": "user", "content": PROMPT}]

    async def complete() -> str:
        return str((await llm.chat(messages)).text)

    async def streamed() -> str:
        parts = []
        async for event in llm.chat_stream(messages):
            if isinstance(event, TextDelta):
                parts.append(event.text)
        return "".join(parts)

    return streamed if stream else complete


async def batch(fn: Callable[[], Awaitable[str]], calls: int) -> None:
    async def worker(n: int) -> None:
        for _ in range(n):
            await fn()

    await asyncio.gather(*(worker(calls // CONCURRENCY) for _ in range(CONCURRENCY)))


async def cpu_us(fn: Callable[[], Awaitable[str]], calls: int) -> float:
    await batch(fn, 2 * CONCURRENCY)
    gc.collect()
    cpu0 = time.process_time()
    await batch(fn, calls)
    return (time.process_time() - cpu0) / calls * 1e6


def litellm_us(urls: list[str], calls: int, stream: bool) -> float | None:
    script = Path(__file__).with_name("litellm_router.py")
    args = [str(LITELLM_PY), str(script), "--urls", ",".join(urls), "--calls", str(calls)]
    done = subprocess.run(
        [*args, *(["--stream"] if stream else [])], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        print(f"litellm-router failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu_us"])


async def main(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    with ExitStack() as stack:
        urls = [stack.enter_context(test_server()) for _ in range(3)]
        plain = registry()
        clients: dict[str, Chatty] = {
            "single": interface(urls[0], "p0", plain),
            "single+observer": interface(urls[0], "p0", registry(NoOp())),
            "group": ModelGroup(
                [interface(u, f"p{i}", plain) for i, u in enumerate(urls)],
                strategy="least_loaded",
                registry=plain,
            ),
        }
        try:
            import llmplug_otel

            clients["single+otel"] = interface(urls[0], "p0", registry(llmplug_otel))
        except ImportError:
            pass
        results: dict[str, dict[str, float]] = {}
        for stream in (False, True):
            cell = "stream" if stream else "no stream"
            calls = args.calls // (2 if stream else 1)
            samples: dict[str, list[float]] = {name: [] for name in clients}
            for _ in range(args.repeats):
                for name, llm in clients.items():  # interleaved: noise spreads evenly
                    samples[name].append(await cpu_us(calls_of(llm, stream), calls))
            results[cell] = {n: statistics.median(s) for n, s in samples.items()}
            if args.litellm and LITELLM_PY.exists():
                got = litellm_us(urls, calls, stream)
                if got is not None:
                    results[cell]["litellm-router"] = got
        for llm in clients.values():
            await llm.aclose()
    return results


def report(results: dict[str, dict[str, float]]) -> None:
    print(f"client CPU per call, us, {CONCURRENCY} in flight (ratio to single)")
    for cell, row in results.items():
        base = row["single"]
        parts = [f"{n} {v:.0f} ({v / base:.2f}x)" for n, v in row.items()]
        verdict = "ok" if row["group"] / base <= TARGET else f"over {TARGET}x"
        print(f"  {cell}: " + ", ".join(parts) + f"  [group {verdict}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-litellm", dest="litellm", action="store_false")
    parser.add_argument("--json")
    ns = parser.parse_args()
    ns.calls = 640 if ns.quick else 1920
    ns.repeats = 3 if ns.quick else 5
    out = asyncio.run(main(ns))
    report(out)
    if ns.json:
        Path(ns.json).write_text(json.dumps(out, indent=2))
