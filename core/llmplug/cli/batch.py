"""``llmplug batch``: run an OpenAI Batch JSONL file against any provider, resumably."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

from llmplug._engine._observe import RunInfo, observed_run

from ._batch_input import check_unique, lines, spool_stdin
from ._batch_output import Output, done_ids
from ._batch_run import BatchRun, Stats
from ._batch_view import Progress, print_summary
from ._common import (
    EXIT_CONFIG,
    EXIT_FAILED_LINES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    add_config_argument,
    fail,
    load_models,
    pick_model,
)

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = ["add_parser", "run"]

#: How long a batch lets the token bucket hold a request past its turn, so that the requests
#: whose turns fall within it go out on one wake-up (see ``TokenBucket.slack``): at 1,000 a
#: minute that is four requests a wake-up instead of one (a wake-up after idle costs more CPU
#: than the request it sends).
WAKE_SLACK = 0.25


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "batch",
        help="run an OpenAI Batch JSONL file against a provider (resumable)",
        description="Run every request of INPUT (OpenAI Batch request lines, or plain "
        '{"id", "messages"|"prompt", params...} lines) and append one OpenAI Batch output '
        "line per request to OUTPUT as each finishes. Ids already in OUTPUT are skipped, so "
        "running the same command again resumes a stopped or killed run.",
    )
    add_config_argument(p)
    p.add_argument(
        "-m",
        "--model",
        required=True,
        help="provider/model from provider.json, or one of its groups",
    )
    p.add_argument("input", help="the requests, one JSON object a line ('-': stdin)")
    p.add_argument("-o", "--output", required=True, help="output JSONL ('-': stdout)")
    p.add_argument(
        "--max-in-flight", type=int, default=64, help="calls running at once (default 64)"
    )
    p.add_argument("--limit", type=int, help="start at most this many new requests")
    p.add_argument(
        "--shard",
        default="0/1",
        help="K/N: take only every N-th line, from line K+1 (one shard per machine)",
    )
    p.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="seconds between progress lines when not on a terminal (default 10)",
    )
    p.add_argument("--redis", metavar="URL", help="share the budget through llmplug-redis")


def _shard(text: str) -> tuple[int, int]:
    k, slash, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = (-1, 0)
    if not slash or not 0 <= shard[0] < shard[1]:
        fail(f"--shard wants K/N with 0 <= K < N, got {text!r}", EXIT_USAGE)
    return shard


def _count(path: str, shard: tuple[int, int], stats: Stats) -> None:
    """The number of requests, for the remaining count and the ETA, counted beside the run."""
    n = 0
    last = b"\n"
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
                last = chunk[-1:]
    except OSError:  # gone or unreadable now: the run reads it, and says so; no ETA then
        return
    n += last != b"\n"  # a last line without its newline
    k, parts = shard
    stats.total = n // parts + (1 if k < n % parts else 0)


def _check_redis_plugin() -> None:
    if importlib.util.find_spec("llmplug_redis") is None:
        fail(
            "--redis needs the llmplug-redis plugin, which is not installed "
            "(pip install 'llmplug[redis]'); without it, split the input with --shard and give "
            "each machine its share of the budget in its provider.json",
            EXIT_CONFIG,
        )


def run(args: argparse.Namespace) -> int:
    if args.max_in_flight < 1:
        fail("--max-in-flight must be >= 1", EXIT_USAGE)
    shard = _shard(args.shard)
    if args.redis:
        _check_redis_plugin()
    llm = pick_model(load_models(args.config, args.redis), args.model, args.config)
    _gather_wakeups(llm)
    if args.input != "-" and not os.path.isfile(args.input):
        fail(f"{args.input}: no such input file", EXIT_USAGE)
    source = spool_stdin() if args.input == "-" else args.input
    try:
        check_unique(source)
        return _run(args, llm, source, shard)
    finally:
        if source != args.input:
            os.unlink(source)


def _run(
    args: argparse.Namespace, llm: LLMInterface | ModelGroup, source: str, shard: tuple[int, int]
) -> int:
    to_stdout = args.output == "-"
    done, torn = (set(), 0) if to_stdout else done_ids(args.output)
    # The output owns stdout when it is '-': progress and summary go to stderr then.
    view = sys.stderr if to_stdout else sys.stdout
    if torn:
        print(f"redoing a torn last line ({torn} bytes cut from {args.output})", file=view)
    out = Output(args.output)
    try:
        return asyncio.run(_main(args, llm, source, out, done, shard, view))
    finally:
        out.close()


def _interfaces(llm: LLMInterface | ModelGroup) -> list[LLMInterface]:
    """The interfaces a call to ``llm`` may reach: itself, or a group's members and fallbacks
    (groups within it included)."""
    from llmplug._interfaces._group import ModelGroup

    found: list[LLMInterface] = []
    todo: list[LLMInterface | ModelGroup] = [llm]
    while todo:
        one = todo.pop()
        if isinstance(one, ModelGroup):
            todo.extend(m.llm for m in one.all_members)  # type: ignore[misc]
        else:
            found.append(one)
    return found


def _gather_wakeups(llm: LLMInterface | ModelGroup) -> None:
    """A batch wants throughput, not one request's latency: let its token buckets admit the
    requests whose turns are close together on one wake-up. Other limiters are left alone."""
    from llmplug._limits._bucket import TokenBucket

    for one in _interfaces(llm):
        for limiter in (one.rate_limiter, one.token_limiter):
            if isinstance(limiter, TokenBucket):
                limiter.slack = WAKE_SLACK


def wire_of(llm: LLMInterface | ModelGroup) -> tuple[str, bool]:
    """The wire the input's lines must fit, and whether the output keeps each provider's own
    body. A group whose members (fallbacks included) all speak one wire is that wire; one of
    several takes Chat Completions lines (neutral messages every wire maps) and writes Chat
    Completions bodies, so the output has one shape whichever member answered."""
    wires = {one.wire for one in _interfaces(llm)}
    if len(wires) == 1:
        return wires.pop(), True
    return "openai-chat", False


async def _main(
    args: argparse.Namespace,
    llm: LLMInterface | ModelGroup,
    source: str,
    out: Output,
    done: set[str],
    shard: tuple[int, int],
    view: TextIO,
) -> int:
    wire, raw_bodies = wire_of(llm)
    batch = BatchRun(
        llm,
        lines(source),
        out,
        done,
        wire=wire,
        raw_bodies=raw_bodies,
        max_in_flight=args.max_in_flight,
        shard=shard,
        limit=args.limit,
    )
    threading.Thread(target=_count, args=(source, shard, batch.stats), daemon=True).start()
    progress = Progress(
        view,
        llm,
        batch.stats,
        lambda: len(batch.tasks),
        args.progress_every,
    )
    loop = asyncio.get_running_loop()
    interrupts = 0

    def interrupted() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            batch.stop()
            progress.say(
                f"stopping: finishing {len(batch.tasks)} calls in flight "
                "(Ctrl-C again cancels them)"
            )
        else:
            batch.cancel()
            progress.say(f"cancelling {len(batch.tasks)} calls in flight")

    loop.add_signal_handler(signal.SIGINT, interrupted)
    t0 = time.monotonic()
    progress.start()
    run_info = RunInfo(
        kind="batch",
        name=os.path.basename(args.input) if args.input != "-" else "stdin",
        llm=llm,
        attributes={"max_in_flight": args.max_in_flight, "wire": wire},
    )
    try:
        with observed_run(llm.registry, run_info):
            await batch.run()
    finally:
        await progress.close()
        loop.remove_signal_handler(signal.SIGINT)
        await llm.aclose()
    if batch.write_error is not None:
        if isinstance(batch.write_error, BrokenPipeError):
            # The reader of -o - went away: the answers not written are lost, and a resume
            # cannot know which, so it is said (on stderr, which may still be read) and the
            # exit is not 0. Python's own flush of stdout at exit would fail again: devnull.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        what = batch.write_error.strerror or batch.write_error
        fail(f"{args.output}: cannot write the output: {what}", EXIT_USAGE)
    if batch.crash is not None:
        # A bug of ours or a plugin's: exit 1, as _cli.main gives any unexpected exception.
        fail(f"the run stopped on an unexpected {type(batch.crash).__name__}: {batch.crash}", 1)
    print_summary(view, batch.stats, time.monotonic() - t0, llm)
    if interrupts:
        return EXIT_INTERRUPTED
    return EXIT_FAILED_LINES if batch.stats.failed else EXIT_OK
