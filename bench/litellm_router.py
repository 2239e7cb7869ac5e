#!/usr/bin/env python
"""LiteLLM's Router over the same servers as bench/groups.py: client CPU per call.

Run by bench/groups.py with the LiteLLM venv's python (tests/servers/litellm/start.sh makes it
under ~/.cache/llmplug/); prints one JSON object: {"cpu_us": ..., "wall_s": ...}.

    python bench/litellm_router.py --urls URL1,URL2,URL3 --calls 1280 [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import time
from typing import Any

PROMPT = "Write two sentences about a fox and a dog."


async def run(urls: list[str], calls: int, concurrency: int, stream: bool) -> dict[str, float]:
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    litellm: Any = importlib.import_module("litellm")
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    router = litellm.Router(
        model_list=[
            {
                "model_name": "group",
                "litellm_params": {"model": "openai/bench-model", "api_base": u, "api_key": "sk"},
            }
            for u in urls
        ],
        routing_strategy="least-busy",
        num_retries=0,
    )
    messages = [{"role": "user", "content": PROMPT}]

    async def one() -> str:
        if not stream:
            r = await router.acompletion(model="group", messages=messages)
            return str(r.choices[0].message.content)
        parts = []
        response = await router.acompletion(model="group", messages=messages, stream=True)
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def batch(n: int) -> None:
        async def worker(k: int) -> None:
            for _ in range(k):
                await one()

        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))

    await batch(2 * concurrency)  # warm-up
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await batch(calls)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us": cpu / calls * 1e6, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--calls", type=int, default=1280)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    out = asyncio.run(run(args.urls.split(","), args.calls, args.concurrency, args.stream))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
