#!/usr/bin/env python
"""What the response cache (plugins/llmplug-cache) costs.

    python bench/cache.py            # ~15 seconds on 2 cores
    python bench/cache.py --quick
    python bench/cache.py --lock     # also: single flight across processes through Redis
    LLMPLUG_BENCH_N=8000 python bench/cache.py   # longer runs of the miss's A/B (4,000 calls)
    python bench/cache.py --no-pin   # the test server and the client sharing every CPU

Measured, against ``python -m llmplug.testing`` in a process of its own (so this process's CPU
time, worker thread included, is the client's alone):

1. A hit: client CPU and wall time per ``chat()`` answered from a SQLite cache (the key, the
   read on the cache's worker thread, decoding, the hit's bookkeeping), against a raw
   dictionary lookup of a precomputed key: what a cache with nothing to compute would cost.
2. A miss's overhead: client CPU per call with a cache that misses every time (a new question
   each call: its hint, unseen, then its key and its write on the writer thread) over the same
   calls without a cache, one at a
   time and 64 in flight, the two interfaces taking turns in blocks of 50 calls in one
   process, the test server on a CPU of its own (``--no-pin``: sharing them). The target is
   at most 5%. Also the cache's own work alone, in a loop around a call
   that answers at once: inside whole calls each piece of it costs several times more.
3. ``--lock``: 4 processes ask the same 20 questions at the same moment of a server that takes
   0.3 s to answer, through Redis with and without the single-flight lock: requests sent and
   wall time.
4. ``--instructions`` (needs valgrind): a miss's overhead counted rather than timed, the
   instructions the client process runs per call (its threads included), with a cache that
   misses every time and without one. It does not move between runs, but it does not see
   what makes the same instructions slower inside a whole call (the CPU's caches taken by the
   rest of the call, the writer thread's hand-overs): the timed 2. is the measure of the 5%
   target. About 75 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmplug import APIKeyPool, Call, Completion, OpenAICompatible

TARGET = 0.05
CONCURRENCY = 64


@contextmanager
def local_server(*extra: str, pin: bool = False) -> Iterator[str]:
    """The test server in a process of its own. ``pin``: it runs on every CPU but the first,
    and this thread (and the threads it starts: the cache's) on the first. The server stands
    for a provider, which runs on other machines: sharing this machine's two CPUs with the
    cache's writer thread, it made a write cost the writer 25 µs of CPU an answer with 64 calls
    in flight, against 5 µs with the CPUs apart (and 5 µs one call at a time either way)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmplug.testing", "--port", "0", "--words", "40", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    mine = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = pin and len(mine) >= 2
    try:
        if pin:
            os.sched_setaffinity(proc.pid, mine[1:])
            os.sched_setaffinity(0, mine[:1])
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        if pin:
            os.sched_setaffinity(0, mine)
        proc.terminate()
        proc.wait(10)


def interface(base_url: str, cache: dict[str, Any] | None) -> OpenAICompatible:
    pool = APIKeyPool(["sk-bench"], "bench", shared=False)
    return OpenAICompatible(
        pool,
        "bench-model",
        base_url,
        rate_limit_capacity=1e9,
        rate_limit_refill_rate=1e9,
        max_retries=0,
        cache=cache,
    )


async def ask(llm: OpenAICompatible, prompts: list[str], concurrency: int) -> None:
    """``prompts``, ``concurrency`` at a time."""
    queue = iter(prompts)

    async def worker() -> None:
        for p in queue:
            await llm.chat(p)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def cpu_per_call(llm: OpenAICompatible, prompts: list[str], concurrency: int) -> float:
    """Client CPU seconds per call over ``prompts``, ``concurrency`` at a time."""
    t0 = time.process_time()
    await ask(llm, prompts, concurrency)
    if llm.call_wrapper is not None:
        # The answers still waiting to be written are this run's cost too: written now, on
        # this thread, rather than by the writer thread during the next run (another client's).
        llm.call_wrapper.flush()  # type: ignore[attr-defined]
    return (time.process_time() - t0) / len(prompts)


async def warm(llm: OpenAICompatible, concurrency: int) -> None:
    """200 calls, in two flushes: the first one's 85 answers go in one INSERT of each size the
    store uses (64, 16, 4 and 1 rows), each prepared once per connection, as a long run's are."""
    for first, last in ((0, 85), (85, 200)):
        await cpu_per_call(llm, [f"warm {i}" for i in range(first, last)], concurrency)


async def hits(base_url: str, db: Path, n: int) -> dict[str, float]:
    llm = interface(base_url, {"path": str(db)})
    await llm.chat("the same question")
    assert llm.call_wrapper is not None
    llm.call_wrapper.flush()  # type: ignore[attr-defined]
    await llm.chat("the same question")  # warm: the reader thread and its connection
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        got = await llm.chat("the same question")
    cpu, wall = (time.process_time() - c0) / n, (time.perf_counter() - t0) / n
    assert got.cached
    await llm.aclose()
    table = {f"key{i}": i for i in range(10_000)}
    lookup = min(timeit.repeat(lambda: table["key5000"], number=100_000, repeat=5)) / 100_000
    return {"hit_cpu_us": cpu * 1e6, "hit_wall_us": wall * 1e6, "dict_ns": lookup * 1e9}


async def wrapper_per_miss(base_url: str, db: Path, n: int) -> float:
    """The cache's own CPU per miss, alone: the wrapper around a call that answers at once with
    a real answer of the server (the hint, keeping the answer, and making its key and writing
    it: the flush is timed too)."""
    async with interface(base_url, None) as plain:
        answer = await plain.chat("a question")
    llm = interface(base_url, {"path": str(db)})
    wrapper: Any = llm.call_wrapper
    await asyncio.to_thread(wrapper.shared.store.sync)  # the file's hints known, as in a run

    async def run(_: Call) -> Completion:
        return answer

    async def batch(tag: str) -> float:
        calls = [llm._call(f"{tag} question {i}", None, {}, False) for i in range(n)]
        t0 = time.process_time()
        for call in calls:
            await wrapper.complete(call, run)
        wrapper.flush()
        return (time.process_time() - t0) / n

    await batch("warm")
    return statistics.median([await batch(f"run {r}") for r in range(3)])


async def misses(base_url: str, tmp: Path, n: int, block: int) -> dict[str, Any]:
    """A miss's overhead end to end: one interface without a cache and one whose cache misses
    every time, in one process, taking turns in blocks of ``block`` calls (the machine's speed
    moves by 15 % within a minute here, and falls on both alike). Each block is charged the
    main thread's CPU; the cache's threads (the writer's flushes, which may fall in the other
    interface's block) are charged to the cache: the process's CPU minus the main thread's."""
    out: dict[str, Any] = {}
    for concurrency in (1, CONCURRENCY):
        plain = interface(base_url, None)
        cached = interface(base_url, {"path": str(tmp / f"miss-{concurrency}.db")})
        for llm in (plain, cached):
            await warm(llm, concurrency)
        spent = {"plain": 0.0, "cached": 0.0}
        process, asked = time.process_time(), 0
        for turn in range(2 * (n // block)):
            kind = ("plain", "cached")[(turn + turn // 2) % 2]  # p c c p p c ...: no order bias
            prompts = [f"question {asked + i}" for i in range(block)]
            asked += block
            t0 = time.thread_time()
            await ask(plain if kind == "plain" else cached, prompts, concurrency)
            spent[kind] += time.thread_time() - t0
        t0 = time.thread_time()
        cached.call_wrapper.flush()  # type: ignore[union-attr]  # what is still waiting
        spent["cached"] += time.thread_time() - t0
        threads = time.process_time() - process - spent["plain"] - spent["cached"]
        calls = n // block * block
        p, c = spent["plain"] / calls, (spent["cached"] + threads) / calls
        out[f"{concurrency} in flight"] = {
            "no_cache_us": p * 1e6,
            "cache_miss_us": c * 1e6,
            "overhead": c / p - 1,
            "threads_us": threads / calls * 1e6,
        }
        await plain.aclose()
        await cached.aclose()
    return out


def lock(quick: bool) -> dict[str, Any]:
    port = 6390 + os.getpid() % 500
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    out: dict[str, Any] = {}
    try:
        time.sleep(0.5)  # (a benchmark: the server's start is not what is measured)
        with local_server("--delay", "0.3") as base_url:
            for use_lock in (False, True):
                spec = {
                    "kind": "redis",
                    "url": f"redis://127.0.0.1:{port}/0",
                    "prefix": f"bench{int(use_lock)}{time.time_ns()}:",
                    "lock": use_lock,
                }
                questions = [f"question {i}" for i in range(10 if quick else 20)]
                t0 = time.perf_counter()
                procs = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            __file__,
                            "--worker",
                            base_url,
                            json.dumps(spec),
                            *questions,
                        ],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(4)
                ]
                misses = sum(int(p.communicate()[0]) for p in procs)
                out["with lock" if use_lock else "without lock"] = {
                    "requests": misses,
                    "wall_s": time.perf_counter() - t0,
                }
    finally:
        redis.terminate()
        redis.wait(10)
    return out


INSTRUCTION_CALLS = 300


def instructions() -> dict[str, float]:
    """Instructions per call, with and without a cache, each the difference of a run of
    ``INSTRUCTION_CALLS`` calls and a run of none (start-up, imports and warm-up cancel out)."""
    out: dict[str, float] = {}
    with local_server() as base_url, tempfile.TemporaryDirectory() as tmp:

        def run(kind: str, n: int, *valgrind: str) -> str:
            worker = [sys.executable, __file__, "--count-worker", base_url, kind, str(n)]
            return subprocess.run(
                [*valgrind, *worker, str(Path(tmp) / f"{kind}-{n}-{len(valgrind)}.db")],
                capture_output=True,
                text=True,
                check=True,
                # The same hashes in every run: dict and set layouts, so instructions, alike.
                env={**os.environ, "PYTHONHASHSEED": "0"},
            ).stderr

        # Once without valgrind: a module compiled in one run and read from __pycache__ in the
        # next would count its compiling (millions of instructions) in one run of a pair only.
        run("cached", 0)
        for kind in ("plain", "cached"):
            counts = []
            for n in (0, INSTRUCTION_CALLS):
                stderr = run(
                    kind, n, "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"
                )
                collected = [ln for ln in stderr.splitlines() if "Collected :" in ln]
                counts.append(int(collected[-1].rsplit(":", 1)[1]))
            out[kind] = (counts[1] - counts[0]) / INSTRUCTION_CALLS
    return out


async def count_worker(base_url: str, kind: str, n: int, db: str) -> None:
    from llmplug_cache import _sqlite

    # The writer gathers for FLUSH_EVERY seconds and writes what came in one transaction: in a
    # real run some hundreds of answers, never twice the same number, but under valgrind (some
    # 50 times slower) a few. Here the answers are written as a real run's flushes are: by
    # batches of varied sizes (cpu_per_call flushes at its end).
    _sqlite.FLUSH_EVERY = 3600.0
    sizes = random.Random(0)
    llm = interface(base_url, {"path": db} if kind == "cached" else None)
    await warm(llm, 1)
    done = 0
    while done < n:
        batch = min(n - done, sizes.randint(60, 140))
        await cpu_per_call(llm, [f"question {done + i}" for i in range(batch)], 1)
        done += batch
    await llm.aclose()


async def worker(base_url: str, spec: dict[str, Any], questions: list[str]) -> None:
    llm = interface(base_url, spec)
    # All four processes ask every question at once, as a fleet of workers of one job would.
    answers = await asyncio.gather(*(llm.chat(q) for q in questions))
    await llm.aclose()
    print(sum(not a.cached for a in answers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lock", action="store_true")
    parser.add_argument("--instructions", action="store_true")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="the test server and this process share every CPU (default: a CPU apart)",
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--count-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        base_url, spec, *questions = args.worker
        asyncio.run(worker(base_url, json.loads(spec), questions))
        return
    if args.count_worker:
        base_url, kind, n, db = args.count_worker
        asyncio.run(count_worker(base_url, kind, int(n), db))
        return
    if args.instructions:
        counted = instructions()
        plain, cached = counted["plain"], counted["cached"]
        print(
            f"miss, counted: {cached / 1e6:.3f} M instructions per call with a cache that "
            f"misses, {plain / 1e6:.3f} M without: {cached / plain - 1:+.1%} (instructions; "
            "the 5% target is checked timed, without --instructions)"
        )
        return
    n, block = (1000, 50) if args.quick else (int(os.environ.get("LLMPLUG_BENCH_N", 4000)), 50)
    tmp = Path(tempfile.mkdtemp(prefix="llmplug-bench-cache-"))
    try:
        with local_server(pin=not args.no_pin) as base_url:
            hit = asyncio.run(hits(base_url, tmp / "hits.db", n))
            own = asyncio.run(wrapper_per_miss(base_url, tmp / "own.db", n))
            miss = asyncio.run(misses(base_url, tmp, n, block))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if args.no_pin or cpus < 2:
        print("the client and the test server share the CPUs")
    else:
        print(f"the client on one CPU, the test server on the other {cpus - 1}")
    print(
        f"hit: {hit['hit_cpu_us']:.0f} us CPU, {hit['hit_wall_us']:.0f} us wall per call; "
        f"a dict lookup: {hit['dict_ns']:.0f} ns"
    )
    for name, m in miss.items():
        verdict = "ok" if m["overhead"] <= TARGET else f"over the {TARGET:.0%} target"
        print(
            f"miss, {name}: {m['cache_miss_us']:.0f} us of client CPU a call with a cache that "
            f"misses ({m['threads_us']:.0f} of them on the cache's threads), "
            f"{m['no_cache_us']:.0f} us without: {m['overhead']:+.1%} ({verdict}); the "
            f"cache's own work, alone in a loop: {own * 1e6:.0f} us a miss"
        )
    if args.lock:
        for name, r in lock(args.quick).items():
            requests, wall = r["requests"], r["wall_s"]
            print(f"4 processes, the same questions, {name}: {requests} requests, {wall:.2f} s")


if __name__ == "__main__":
    main()
