"""llmplug's demo: real calls over real HTTP against an embedded OpenAI-compatible server.

A fresh machine has no API keys and no internet, so this starts llmplug's own test server on
127.0.0.1 and scripts its replies. Everything on the client side is exactly what you would run
against OpenAI, OpenRouter, Groq, vLLM, Ollama or llama.cpp: only ``base_url`` and keys differ.

Run it with ``bash scripts/demo`` (or ``python examples/demo.py`` in a set-up venv).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from llmplug import (
    APIKeyPool,
    Done,
    OpenAICompatible,
    ReasoningDelta,
    TextDelta,
    Tool,
    ToolCallDelta,
)
from llmplug.testing import Error, LLMTestServer, Reply, ToolCallReply

WEATHER = Tool(
    name="get_weather",
    description="Get the current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


_KEYS = ["sk-demo-1", "sk-demo-2", "sk-demo-3"]
EXAMPLES = [
    ("quickstart", "models from provider.json, keys from the environment, both wires"),
    ("typed_output", "@llm_function with a typed reply, repaired once"),
    ("tool_chat", "@llm_chat with parallel tool calls, on the Responses API wire"),
    ("streaming_chat", "@llm_chat streaming, history carried across turns"),
    ("own_plugin", "your own plugins: a key strategy and a request signer"),
]


def _load(name: str) -> Any:
    """Import examples/<name>.py as a module (registered, so its type hints resolve)."""
    spec = importlib.util.spec_from_file_location(
        f"examples_{name}", Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def get_weather(city: str) -> str:
    return f"18 C and sunny in {city}"


def heading(text: str) -> None:
    print(f"\n== {text}")


async def main() -> None:
    with LLMTestServer() as server:
        print(f"test server listening at {server.base_url}")
        llm = OpenAICompatible(
            api_key_pool=APIKeyPool(_KEYS, "local"),
            model_name="demo-model",
            base_url=server.base_url,
            max_retries=3,
            retry_delay=0.05,
            rate_limit_capacity=3,
            rate_limit_refill_rate=10.0,
        )
        async with llm:
            heading("1. one call")
            server.push(Reply(text="Hello! I am a scripted model."))
            reply = await llm.chat([{"role": "user", "content": "hi"}], temperature=0.2)
            print(f"reply: {reply.text!r}  finish={reply.finish_reason}  usage={reply.usage}")

            heading("2. streaming, with reasoning")
            server.push(
                Reply(
                    text="Streaming arrives piece by piece.",
                    reasoning="The user wants to see a stream.",
                    chunk_delay=0.02,
                )
            )
            async for event in llm.chat_stream("stream something"):
                if isinstance(event, ReasoningDelta):
                    print(f"  [reasoning] {event.text!r}")
                elif isinstance(event, TextDelta):
                    print(f"  [text]      {event.text!r}")
                elif isinstance(event, Done):
                    print(f"  [done]      {event.completion.text!r}")

            heading("3. a tool call, run locally, and the answer")
            server.push(
                Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Paris"})]),
                Reply(text="It is 18 C and sunny in Paris."),
            )
            history: list[dict[str, object]] = [
                {"role": "user", "content": "What is the weather in Paris?"}
            ]
            first = await llm.chat(history, tools=[WEATHER])
            history.append(first.to_message())  # type: ignore[arg-type]
            for call in first.tool_calls:
                result = get_weather(**call.parsed_arguments())
                print(f"  model called {call.name}({call.arguments}) -> {result!r}")
                history.append({"role": "tool", "tool_call_id": call.id, "content": result})
            final = await llm.chat(history, tools=[WEATHER])
            print(f"  final answer: {final.text!r}")

            heading("4. streamed tool call fragments")
            server.push(
                Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Oslo"})])
            )
            async for event in llm.chat_stream("Weather in Oslo?", tools=[WEATHER]):
                if isinstance(event, ToolCallDelta):
                    print(f"  fragment #{event.index}: name={event.name} args+={event.arguments!r}")
                elif isinstance(event, Done):
                    print(f"  joined: {event.completion.tool_calls}")

            heading("5. three keys rotating (12 concurrent calls)")
            server.clear()
            llm.reset_rate_limit()
            await asyncio.gather(*(llm.chat(f"call {i}") for i in range(12)))
            counts = Counter(r.api_key for r in server.requests)
            for fp, key in zip(llm.key_pool.fingerprints, _KEYS, strict=True):
                print(f"  {fp}: {counts[key]} requests")

            heading("6. the rate limiter pacing a burst (capacity 3, 10 tokens/s)")
            server.clear()
            llm.reset_rate_limit()
            arrivals: list[float] = []
            server.handler = lambda _r: arrivals.append(time.monotonic())
            t0 = time.monotonic()
            await asyncio.gather(*(llm.chat(f"burst {i}") for i in range(8)))
            server.handler = None
            for i, t in enumerate(sorted(arrivals)):
                print(f"  request {i + 1} reached the server at +{(t - t0) * 1000:6.1f} ms")
            print(f"  status now: {llm.get_rate_limit_status()}")

            heading("7. a 429 on one key: the retry goes at once to another key")
            server.clear()
            pool = APIKeyPool(_KEYS, "local")
            async with OpenAICompatible(
                pool, "demo-model", server.base_url, retry_delay=0.05
            ) as fresh:
                limited = Error(
                    status=429, message="Rate limit reached", headers={"retry-after": "20"}
                )
                server.push(limited, key="sk-demo-1")
                reply = await fresh.chat("hello again")
                tried = [pool.fingerprints[_KEYS.index(r.api_key or "")] for r in server.requests]
                print(f"  keys tried in order: {tried}; reply {reply.text!r}")
                for row in pool.status():
                    print(f"  {row}")

    # The decorators, each from its own example script (runnable on its own too).
    for number, (name, title) in enumerate(EXAMPLES, start=8):
        heading(f"{number}. {title} (examples/{name}.py)")
        await _load(name).main()

    print("\ndemo finished: every call above went over real HTTP.")


if __name__ == "__main__":
    asyncio.run(main())
