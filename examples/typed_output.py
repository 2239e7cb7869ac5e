"""A typed function whose body is an LLM call: the reply is decoded and validated into a Struct.

The embedded test server plays the model; point ``base_url`` and the keys at a real provider
and nothing else changes."""

from __future__ import annotations

import asyncio
from typing import Literal

import msgspec

from llmplug import APIKeyPool, OpenAICompatible, llm_function
from llmplug.testing import LLMTestServer, Reply


class Analysis(msgspec.Struct):
    sentiment: Literal["positive", "negative", "neutral"]
    keywords: list[str]


async def main() -> None:
    with LLMTestServer() as server:
        llm = OpenAICompatible(APIKeyPool(["sk-example"], "local"), "demo-model", server.base_url)

        @llm_function(llm_interface=llm, temperature=0.2)
        async def analyze(text: str) -> Analysis:
            """Analyze the sentiment and keywords of {language} text."""

        # The model's first answer breaks the schema; llmplug shows it the error once and the
        # second answer is valid.
        server.push(
            Reply(text='{"sentiment": "sunny", "keywords": ["weather"]}'),
            Reply(text='{"sentiment": "positive", "keywords": ["weather", "Paris"]}'),
        )
        result = await analyze(
            "What a lovely day in Paris!",
            _template_params={"language": "English"},  # type: ignore[call-arg]
        )
        print(f"typed result: {result!r}")
        sent = server.requests[0].json
        print(f"structured output asked for: {sent['response_format']['json_schema']['name']}")
        print(f"requests made (one repair included): {len(server.requests)}")
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
