"""A streaming chat, written as SimpleLLMFunc's README writes it: ``(chunk, updated_history)``
pairs as text arrives, and the history carries on across turns."""

from __future__ import annotations

import asyncio
from typing import Any

from llmplug import APIKeyPool, HistoryList, OpenAICompatible, llm_chat
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
        history: HistoryList = []
        for question in ("How do streams arrive?", "And then?"):
            print(f"user: {question}\nassistant: ", end="", flush=True)
            async for chunk, updated_history in chat(question, history):
                print(chunk, end="", flush=True)
                history = updated_history  # the last one (an empty chunk) holds the whole turn
            print()
        print(f"history has {len(history)} messages")
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
