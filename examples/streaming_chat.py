"""A streaming chat: text arrives as it is generated, and the history carries on across turns."""

from __future__ import annotations

import asyncio
from typing import Any

from llmplug import APIKeyPool, ChatDone, OpenAICompatible, ReasoningDelta, TextDelta, llm_chat
from llmplug.testing import LLMTestServer, Reply


async def main() -> None:
    with LLMTestServer() as server:
        llm = OpenAICompatible(APIKeyPool(["sk-example"], "local"), "demo-model", server.base_url)

        @llm_chat(llm_interface=llm, stream=True)
        async def chat(message: str, history: list[dict[str, Any]] | None = None) -> None:
            """You are a concise assistant."""

        server.push(
            Reply(text="Streams arrive in pieces.", reasoning="Short answer.", chunk_delay=0.02),
            Reply(text="And the history goes on.", chunk_delay=0.02),
        )
        history: list[dict[str, Any]] | None = None
        for question in ("How do streams arrive?", "And then?"):
            print(f"user: {question}\nassistant: ", end="", flush=True)
            async for event in chat(question, history):
                if isinstance(event, ReasoningDelta):
                    print(f"({event.text})", end="", flush=True)
                elif isinstance(event, TextDelta):
                    print(event.text, end="", flush=True)
                elif isinstance(event, ChatDone):
                    history = event.history
            print()
        print(f"history has {len(history or [])} messages")
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
