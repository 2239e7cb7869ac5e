#!/usr/bin/env python
"""The ``redis`` limiter against the local TokenBucket. Not a test.

    python bench/redis_limiter.py              # starts its own redis-server on a free port
    python bench/redis_limiter.py --markdown   # the README's table

Latency: one caller acquiring from a bucket that never makes it wait (p50, p99). Throughput:
64 concurrent callers in one process, then 8 processes of 64. Utilisation: 4 processes
saturating a bucket of 20 + 200/s for 3 s, counted by the turns Redis handed out, against
``capacity + rate * t``. Targets: p50 < 0.5 ms; >= 5,000 acquires/s from one process with 64
callers; >= 97% utilisation with 4 processes."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any

from llmplug import APIKeyPool, TokenBucket
from llmplug_redis import RedisLimiter, backend

BIG = 1e9  # a bucket that never makes anyone wait: the limiter's own cost


def _limiter(url: str, prefix: str, capacity: float, rate: float) -> RedisLimiter:
    pool = APIKeyPool(["sk-bench"], "bench", shared=False)
    spec = {"kind": "redis", "url": url, "prefix": prefix, "timeout": 2.0}
    got = backend(
        spec, pool=pool, model="m", capacity=capacity, refill_rate=rate, tokens_per_minute=None
    )
    lim = got.limiter
    assert isinstance(lim, RedisLimiter)
    return lim


def _limiter_of(kind: str, url: str, prefix: str) -> Any:
    return TokenBucket(BIG, BIG) if kind == "local" else _limiter(url, prefix, BIG, BIG)


async def _latency(kind: str, url: str, n: int) -> tuple[float, float]:
    lim = _limiter_of(kind, url, uuid.uuid4().hex)
    for _ in range(200):
        await lim.acquire(1.0)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await lim.acquire(1.0)
        times.append(time.perf_counter() - t0)
    if kind == "redis":
        await lim.conn.aclose()
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99)] * 1e3


async def _throughput(kind: str, url: str, prefix: str, seconds: float, callers: int) -> int:
    lim = _limiter_of(kind, url, prefix)
    if kind == "redis":
        await lim.conn.warm(2)
    done = 0
    end = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await lim.acquire(1.0)
            done += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    if kind == "redis":
        await lim.conn.aclose()
    return done


def _throughput_proc(args: tuple[str, str, str, float, int]) -> int:
    return asyncio.run(_throughput(*args))


async def _saturate(url: str, prefix: str, start: float, window: float) -> int:
    lim = _limiter(url, prefix, 20, 200.0)
    await lim.conn.warm(16)
    await asyncio.sleep(max(0.0, start - time.time()))
    end = start + window
    admitted = 0

    async def caller() -> None:
        nonlocal admitted
        while True:
            wait = await lim.reserve(1.0)
            if time.time() + wait >= end:
                return
            admitted += 1
            await asyncio.sleep(wait)

    await asyncio.gather(*(caller() for _ in range(16)))
    await lim.conn.aclose()
    return admitted


def _saturate_proc(args: tuple[str, str, float, float]) -> int:
    return asyncio.run(_saturate(*args))


def _redis_server() -> tuple[subprocess.Popen[bytes], str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tempfile.mkdtemp(prefix="llmplug-bench-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", d],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.02)
    return proc, f"redis://127.0.0.1:{port}/0", d


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--url", help="an existing Redis (default: start one)")
    ap.add_argument("--seconds", type=float, default=3.0)
    opts = ap.parse_args()
    proc = None
    url = opts.url
    if url is None:
        proc, url, tmp = _redis_server()
    try:
        rows = []
        ctx = multiprocessing.get_context("spawn")
        for kind in ("local", "redis"):
            p50, p99 = asyncio.run(_latency(kind, url, 3000))
            one = asyncio.run(_throughput(kind, url, uuid.uuid4().hex, opts.seconds, 64))
            prefix = uuid.uuid4().hex
            with ctx.Pool(8) as pool:
                eight = sum(pool.map(_throughput_proc, [(kind, url, prefix, opts.seconds, 64)] * 8))
            rows.append((kind, p50, p99, one / opts.seconds, eight / opts.seconds))
        window = 3.0
        start = time.time() + 3.0
        prefix = uuid.uuid4().hex
        with ctx.Pool(4) as pool:
            admitted = sum(pool.map(_saturate_proc, [(url, prefix, start, window)] * 4))
        allowed = 20 + 200 * window
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    if opts.markdown:
        print("| limiter | acquire p50 | p99 | acquires/s, 1 process x 64 | 8 processes x 64 |")
        print("| --- | --- | --- | --- | --- |")
        for kind, p50, p99, one_s, eight_s in rows:
            print(f"| {kind} | {p50:.3f} ms | {p99:.3f} ms | {one_s:,.0f} | {eight_s:,.0f} |")
        print(
            f"\nUtilisation, 4 processes saturating 20 + 200/s for {window:g} s: "
            f"{admitted} of {allowed:g} ({admitted / allowed:.1%})"
        )
    else:
        for kind, p50, p99, one_s, eight_s in rows:
            print(
                f"{kind:6} p50 {p50:.3f} ms  p99 {p99:.3f} ms  1x64 {one_s:,.0f}/s  "
                f"8x64 {eight_s:,.0f}/s"
            )
        print(f"utilisation 4 processes: {admitted}/{allowed:g} = {admitted / allowed:.1%}")


if __name__ == "__main__":
    main()
