"""A process that asks questions through a cache: ``ask BASE_URL CACHE_JSON Q1 Q2 ...``.

It makes the interface, says "ready", waits for a line on stdin (so every process starts
together), asks its questions one after another and prints one JSON line: the answers' texts
and whether each was a hit."""

from __future__ import annotations

import asyncio
import json
import sys

from llmplug import APIKeyPool, OpenAICompatible


async def ask(base_url: str, cache: dict[str, object], questions: list[str]) -> None:
    pool = APIKeyPool(["sk-worker"], "test", shared=False)
    llm = OpenAICompatible(
        pool,
        "test-model",
        base_url,
        cache=cache,
        max_retries=0,
        rate_limit_capacity=10_000,
        rate_limit_refill_rate=10_000,
    )
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    out = []
    async with llm:
        for q in questions:
            c = await llm.chat(q)
            out.append([c.text, c.cached])
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    _, mode, base_url, cache, *questions = sys.argv
    assert mode == "ask"
    asyncio.run(ask(base_url, json.loads(cache), questions))
