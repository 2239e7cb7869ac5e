#!/usr/bin/env python
"""How well the key strategy ``sticky`` keeps conversations on their key. Not a test (the
issue's target is asserted in tests/plugins/sticky/ too); this prints the numbers.

    python bench/sticky.py                     # 50 conversations of 10 turns over 3 keys
    python bench/sticky.py --conversations 200 --turns 20 --keys 5

Each conversation is an ``@llm_chat`` agent whose history grows turn by turn, with no
``session_id``; all conversations play each turn at once against llmplug's test server. A
conversation's key is the one that carried most of its turns.

1. Every key healthy: turns on their conversation's key (target: at least 95% for sticky),
   and how the conversations and requests spread over the keys, against round_robin and
   least_loaded.
2. The first key rests (cooling) for turns 4-6, then comes back: turns on the conversation's
   key, conversations of the other keys that moved (target 0), and where the resting key's
   conversations went.
3. A key added to the list, a key removed: the share of conversations that change key.
4. The same at scale, computed without HTTP (the choice is a pure function of the
   conversation and the keys): 10,000 conversations per key, and the share that moves when a
   key is added.
5. CPU per select_key (the hook call, lease and release), by strategy, number of keys and
   size of the conversation's opening.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from llmplug import APIKeyPool, Call, ChatDone, Message, OpenAICompatible, fingerprint, llm_chat
from llmplug._engine._registry import default_registry
from llmplug.testing import LLMTestServer
from llmplug_sticky import conversation_id, ranking

STRATEGIES = ["sticky", "round_robin", "least_loaded"]


def keys_of(n: int) -> list[str]:
    return [f"sk-bench-{i}" for i in range(1, n + 1)]


async def play(
    server: LLMTestServer,
    strategy: str,
    keys: list[str],
    conversations: int,
    turns: int,
    rest: tuple[int, int] | None = None,
) -> dict[int, list[str]]:
    """Play the conversations; conversation -> the key of each of its turns. With ``rest``
    (first, last turn), the first key is cooling during those turns."""
    server.clear()
    pool = APIKeyPool(keys, "bench", strategy=strategy, shared=False)
    llm = OpenAICompatible(
        api_key_pool=pool,
        model_name="bench-model",
        base_url=server.base_url,
        rate_limit_capacity=100_000,
        rate_limit_refill_rate=100_000.0,
    )

    @llm_chat(llm_interface=llm)
    async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
        """You are a patient assistant."""

    histories: list[list[dict[str, Any]]] = [[] for _ in range(conversations)]

    async def turn(c: int, t: int) -> None:
        async for event in agent.events(f"conversation {c}: turn {t}", histories[c]):
            if isinstance(event, ChatDone):
                histories[c] = event.history

    for t in range(turns):
        if rest and t == rest[0]:
            pool.cool_down(0, 3600, "resting for the benchmark")
        if rest and t == rest[1] + 1:
            pool.reset()
        await asyncio.gather(*(turn(c, t) for c in range(conversations)))
    await llm.aclose()
    out: dict[int, list[str]] = {}
    for r in server.requests:
        first = next(m for m in r.json["messages"] if m["role"] == "user")["content"]
        out.setdefault(int(first.split()[1].rstrip(":")), []).append(r.api_key or "")
    return out


def homes(played: dict[int, list[str]]) -> dict[int, str]:
    return {c: Counter(ks).most_common(1)[0][0] for c, ks in played.items()}


def on_home(played: dict[int, list[str]]) -> float:
    home = homes(played)
    total = sum(len(ks) for ks in played.values())
    return sum(k == home[c] for c, ks in played.items() for k in ks) / total


def spread(counts: Counter[Any], keys: Iterable[Any]) -> str:
    return " / ".join(str(counts.get(k, 0)) for k in keys)


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print()


async def healthy(server: LLMTestServer, args: argparse.Namespace) -> None:
    keys = keys_of(args.keys)
    print(f"1. {args.conversations} conversations x {args.turns} turns, {args.keys} keys healthy")
    rows = [["strategy", "turns on their key", "conversations per key", "requests per key"]]
    for strategy in STRATEGIES:
        played = await play(server, strategy, keys, args.conversations, args.turns)
        requests = Counter(k for ks in played.values() for k in ks)
        rows.append(
            [
                strategy,
                f"{on_home(played):.1%}",
                spread(Counter(homes(played).values()), keys),
                spread(requests, keys),
            ]
        )
    table(rows)


async def resting(server: LLMTestServer, args: argparse.Namespace) -> None:
    keys = keys_of(args.keys)
    first, last = 4, min(6, args.turns - 2)
    print(f"2. key 1 rests for turns {first}-{last}, then comes back")
    before = homes(await play(server, "sticky", keys, args.conversations, args.turns))
    played = await play(server, "sticky", keys, args.conversations, args.turns, (first, last))
    orphans = [c for c, k in before.items() if k == keys[0]]
    others_moved = sum(
        any(k != before[c] for k in ks) for c, ks in played.items() if c not in orphans
    )
    went = Counter(played[c][first] for c in orphans)
    back = sum(all(k == before[c] for k in ks[last + 1 :]) for c, ks in played.items())
    stayed = sum(len(set(played[c][first : last + 1])) == 1 for c in orphans)
    rows = [["measure", "sticky"]]
    rows.append(["turns on their key (healthy-run key)", f"{on_home_of(played, before):.1%}"])
    rows.append(["other keys' conversations that moved", str(others_moved)])
    rows.append([f"key 1's {len(orphans)} conversations went to", spread(went, keys)])
    rows.append(["...and each stayed on one key while it rested", f"{stayed}/{len(orphans)}"])
    rows.append(["conversations back on their key after", f"{back}/{len(played)}"])
    table(rows)


def on_home_of(played: dict[int, list[str]], home: dict[int, str]) -> float:
    total = sum(len(ks) for ks in played.values())
    return sum(k == home[c] for c, ks in played.items() for k in ks) / total


async def churn(server: LLMTestServer, args: argparse.Namespace) -> None:
    keys = keys_of(args.keys)
    print("3. keys coming and going (a new pool): conversations that change key")
    rows = [["change", "sticky", "round_robin"]]
    cases = [
        (f"{args.keys} -> {args.keys + 1} keys", [*keys, "sk-bench-new"]),
        (f"{args.keys} -> {args.keys - 1} keys", keys[1:]),
    ]
    for name, after in cases:
        row = [name]
        for strategy in ("sticky", "round_robin"):
            a = homes(await play(server, strategy, keys, args.conversations, 1))
            b = homes(await play(server, strategy, after, args.conversations, 1))
            row.append(f"{sum(a[c] != b[c] for c in a) / len(a):.0%}")
        rows.append(row)
    table(rows)


def opening_call(c: int) -> Call:
    return Call(
        provider="bench",
        model="m",
        wire="openai-chat",
        base_url="http://127.0.0.1/v1",
        messages=[
            Message(role="system", content="You are a patient assistant."),
            Message(role="user", content=f"conversation {c}: turn 0"),
        ],
    )


def at_scale(args: argparse.Namespace) -> None:
    n = 10_000
    fps = [fingerprint(k) for k in keys_of(args.keys + 1)]
    conversations = [conversation_id(opening_call(c)) for c in range(n)]
    before = [ranking(c, fps[:-1])[0] for c in conversations]
    after = [ranking(c, fps)[0] for c in conversations]
    moved = [b for a, b in zip(before, after, strict=True) if a != b]
    print(f"4. {n:,} conversations, computed (no HTTP)")
    rows = [["measure", "sticky"]]
    per_key = Counter(before)
    rows.append([f"conversations per key ({args.keys} keys)", spread(per_key, range(args.keys))])
    rows.append([f"moved when key {args.keys + 1} is added", f"{len(moved) / n:.1%}"])
    rows.append(["...all of them to the new key", str(set(moved) == {args.keys})])
    table(rows)


def cpu(args: argparse.Namespace) -> None:
    print("5. CPU per select_key (hook call, lease, release)")
    registry = default_registry()
    rows = [["strategy", "keys", "opening", "us per call"]]
    for strategy in ("sticky", "round_robin"):
        for n in (3, 30):
            for size in (100, 10_000):
                pool = APIKeyPool(keys_of(n), "bench-cpu", strategy=strategy, shared=False)
                call = Call(
                    provider="bench-cpu",
                    model="m",
                    wire="openai-chat",
                    base_url="http://127.0.0.1/v1",
                    messages=[
                        Message(role="system", content="x" * size),
                        Message(role="user", content="hello"),
                        Message(role="assistant", content="hi"),
                        Message(role="user", content="more"),
                    ],
                )
                rounds = args.cpu_rounds
                t0 = time.perf_counter()
                for _ in range(rounds):
                    with pool.lock:
                        lease = registry.hook.select_key(strategy=strategy, pool=pool, call=call)
                    lease.release()
                us = (time.perf_counter() - t0) / rounds * 1e6
                rows.append([strategy, str(n), f"{size:,} B", f"{us:.1f}"])
    table(rows)


async def main_async(args: argparse.Namespace) -> None:
    with LLMTestServer() as server:
        await healthy(server, args)
        await resting(server, args)
        await churn(server, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--cpu-rounds", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(main_async(args))
    at_scale(args)
    cpu(args)


if __name__ == "__main__":
    main()
