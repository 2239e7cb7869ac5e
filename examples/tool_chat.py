"""A chat agent with tools: the model calls two tools in one turn, they run concurrently, and
the answer comes back with the updated history. ``agent.events(...)`` gives llmplug's typed
events (``agent(...)`` gives SimpleLLMFunc's ``(response, history)`` pairs: see
streaming_chat.py)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llmplug import (
    APIKeyPool,
    AssistantReply,
    ChatDone,
    OpenAIResponsesCompatible,
    ToolCallEvent,
    ToolResultEvent,
    llm_chat,
    tool,
)
from llmplug.testing import LLMTestServer, Reply, ToolCallReply


@tool(name="get_weather", description="Get the weather for a city")
async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, str]:
    """Args:
    city: the city's name
    unit: temperature unit
    """
    return {"city": city, "forecast": "sunny", "temperature": "21" if unit == "C" else "70"}


async def main() -> None:
    with LLMTestServer() as server:
        # The same agent code runs on the Responses API wire as on Chat Completions.
        llm = OpenAIResponsesCompatible(
            APIKeyPool(["sk-example"], "local"), "demo-model", server.base_url
        )

        @llm_chat(llm_interface=llm, toolkit=[get_weather], reasoning_effort="high")
        async def agent(message: str, history: list[dict[str, Any]] | None = None) -> None:
            """You are a weather assistant."""

        server.push(
            Reply(
                tool_calls=[
                    ToolCallReply(name="get_weather", arguments={"city": "Paris"}),
                    ToolCallReply(name="get_weather", arguments={"city": "Oslo", "unit": "F"}),
                ]
            ),
            Reply(text="Paris: sunny, 21 C. Oslo: sunny, 70 F."),
        )
        async for event in agent.events("Weather in Paris and Oslo?"):
            if isinstance(event, ToolCallEvent):
                print(f"  tool call   {event.call.name}({event.call.arguments})")
            elif isinstance(event, ToolResultEvent):
                print(f"  tool result {event.result.content}")
            elif isinstance(event, AssistantReply) and event.text:
                print(f"  assistant   {event.text}")
            elif isinstance(event, ChatDone):
                roles = [m["role"] for m in event.history]
                print(f"  history now {roles}; tokens used {event.usage.total_tokens}")
        print(f"  sent as: reasoning={server.requests[0].json['reasoning']}")
        await llm.aclose()


if __name__ == "__main__":
    asyncio.run(main())
