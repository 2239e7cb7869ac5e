"""``llmplug batch`` under a budget, and flat out.

1. ``--prompts`` requests (default 10,000) at ``--rpm`` requests a minute (default 1,000) over
   3 keys: the rate held (target: within 2% of the budget), the worst window (requests beyond
   ``capacity + rate * t`` in any stretch: target never above), and the CLI's own CPU as a share
   of one core (target: under 5%), beside a minimal asyncio + httpx2 script sending the same
   requests at the same rate, as many at a time as the batch's bucket admits per wake-up: on
   these machines a wake-up after an idle stretch costs more CPU than the request it sends, and
   by how much changes from minute to minute, so the floor is measured in the same run.
2. The same file with no budget: requests per second, as a ratio to a minimal asyncio + httpx2
   script that reads the same file and writes the same kind of lines at the same concurrency.

The server (``llmplug.testing.LLMTestServer``) runs in this process and stamps each request's
arrival; the CLI and the baseline run in processes of their own, whose CPU time the kernel
reports when they end. The full default run takes 10 minutes of wall time for part 1.

    python bench/batch.py                          # 10,000 prompts at 1,000/min
    python bench/batch.py --prompts 2000           # 2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BASELINE = r"""
import asyncio, json, sys
import httpx2

async def main(url, src, dst, concurrency, rate, per):
    sem = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    t0, started = loop.time(), 0
    out = open(dst, "wb")
    async with httpx2.AsyncClient(limits=httpx2.Limits(max_connections=concurrency)) as client:
        async def one(line):
            try:
                req = json.loads(line)
                body = {"model": "test-model",
                        "messages": [{"role": "user", "content": req["prompt"]}]}
                r = await client.post(url + "/chat/completions", json=body,
                                      headers={"Authorization": "Bearer sk-1"})
                out.write(json.dumps({"custom_id": req["id"], "response": {
                    "status_code": r.status_code, "body": r.json()}}).encode() + b"\n")
            finally:
                sem.release()
        tasks = set()
        with open(src, "rb") as f:
            for line in f:
                await sem.acquire()
                if rate and started % per == 0:  # paced: ``per`` requests at a time
                    await asyncio.sleep(max(0.0, t0 + started / rate - loop.time()))
                started += 1
                t = asyncio.create_task(one(line))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.wait(set(tasks))
    out.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
                 float(sys.argv[5]), int(sys.argv[6])))
"""


def run_child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{args[:4]} failed: {proc.stderr.read().decode()[-2000:]}")
    if proc.stderr is not None:
        proc.stderr.close()
    return wall, usage.ru_utime + usage.ru_stime


def wake_burst(capacity: float, rate: float) -> int:
    """How many requests the batch's token bucket admits on one wake-up at ``rate``: those
    whose turns fall within its slack, as far as a bucketful (less 20 ms of refill) goes."""
    from llmplug._limits._bucket import _LATE
    from llmplug.cli.batch import WAKE_SLACK

    by_slack = int(WAKE_SLACK * rate) + 1
    by_capacity = int(capacity - _LATE * rate)
    return max(1, min(by_slack, by_capacity))


def busiest_window(stamps: list[float], window: float) -> int:
    """The most requests that arrived within any ``window`` seconds."""
    most, i = 0, 0
    for j, t in enumerate(stamps):
        while t - stamps[i] >= window:
            i += 1
        most = max(most, j - i + 1)
    return most


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=10_000)
    ap.add_argument("--rpm", type=float, default=1000.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument(
        "--burst",
        type=int,
        default=5,
        help="the limiter's capacity; it refills at (rpm - 2 * burst) a minute, so that no 60 s "
        "window can hold more than rpm - burst requests: a margin for the arrival times' "
        "jitter at the server (default 5)",
    )
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument("--skip-free", action="store_true")
    args = ap.parse_args()

    from llmplug.testing import LLMTestServer, RecordedRequest, Reply

    stamps: list[float] = []
    lock = threading.Lock()
    reply = Reply(text="ok " * 20)

    def stamp(req: RecordedRequest) -> Reply:
        with lock:
            stamps.append(time.monotonic())
        return reply

    tmp = Path(tempfile.mkdtemp(prefix="llmplug-bench-batch-"))
    src = tmp / "in.jsonl"
    with src.open("w") as f:
        for i in range(args.prompts):
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Say something about {i}."}) + "\n")

    with LLMTestServer(record=False) as server:
        server.default = stamp

        def config(rpm: float | None) -> Path:
            entry = {
                "model_name": "test-model",
                "api_keys": ["sk-bench-1", "sk-bench-2", "sk-bench-3"],
                "base_url": server.base_url,
                "rate_limit_capacity": args.burst if rpm else 100_000,
                "rate_limit_refill_rate": (rpm - 2 * args.burst) / 60 if rpm else 100_000,
            }
            path = tmp / ("budget.json" if rpm else "free.json")
            path.write_text(json.dumps({"local": [entry]}))
            return path

        def batch(cfg: Path, out: Path) -> tuple[float, float]:
            out.unlink(missing_ok=True)
            return run_child(
                [
                    sys.executable,
                    "-m",
                    "llmplug",
                    "batch",
                    "-c",
                    str(cfg),
                    "-m",
                    "local/test-model",
                    str(src),
                    "-o",
                    str(out),
                    "--max-in-flight",
                    str(args.concurrency),
                    "--progress-every",
                    "60",
                ]
            )

        def baseline(rate: float, per: int) -> tuple[float, float]:
            return run_child(
                [
                    sys.executable,
                    "-c",
                    BASELINE,
                    server.base_url,
                    str(src),
                    str(tmp / "out-base.jsonl"),
                    str(args.concurrency),
                    str(rate),
                    str(per),
                ]
            )

        print(f"llmplug batch: {args.prompts:,} prompts, 3 keys, local server")
        if not args.skip_budget:
            stamps.clear()
            wall, cpu = batch(config(args.rpm), tmp / "out-budget.jsonl")
            held = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60
            # The budget is per minute: the most requests in any 60 s (the whole run, if shorter).
            window = 60.0
            most = busiest_window(stamps, window)
            allowed = args.rpm
            print(
                f"  budget {args.rpm:,.0f}/min: limiter capacity {args.burst}, "
                f"refill {args.rpm - 2 * args.burst:,.0f}/min; {args.concurrency} in flight"
            )
            print(f"    rate held       {held:,.1f}/min ({(held / args.rpm - 1) * 100:+.2f}%)")
            print(
                f"    busiest {window:.0f} s    {most:,} requests (budget {allowed:,.0f}: "
                f"{'never exceeded' if most <= allowed else 'EXCEEDED'})"
            )
            share = cpu / wall * 100
            print(f"    CLI CPU         {cpu:.2f} s in {wall:.1f} s = {share:.2f}% of a core")
            # What this machine charges for the same requests at the same rate, sent as the
            # batch's bucket admits them (a wake-up costs far more CPU after an idle stretch
            # than its work: the floor moves with the machine, so it is measured each run).
            rate = (args.rpm - 2 * args.burst) / 60
            per = wake_burst(args.burst, rate)
            bw, bc = baseline(rate, per)
            print(
                f"    asyncio+httpx2  {bc:.2f} s in {bw:.1f} s = {bc / bw * 100:.2f}% of a core "
                f"(same rate, {per} at a time); llmplug {cpu / bc:.2f}x"
            )

        if args.skip_free:
            return
        runs = []
        for _ in range(3):
            w1, c1 = batch(config(None), tmp / "out-free.jsonl")
            w2, c2 = baseline(0.0, 1)
            runs.append((w1, c1, w2, c2))
        runs.sort(key=lambda r: r[0] / r[2])
        w1, c1, w2, c2 = runs[1]
        print(f"  no budget, {args.concurrency} in flight (median of 3 pairs)")
        print(f"    llmplug batch   {args.prompts / w1:,.0f} req/s  (CPU {c1:.1f} s)")
        print(f"    asyncio+httpx2  {args.prompts / w2:,.0f} req/s  (CPU {c2:.1f} s)")
        print(f"    ratio           {w2 / w1:.2f}x the baseline's rate")


if __name__ == "__main__":
    main()
