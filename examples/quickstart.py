"""Quickstart: models from a provider.json (keys from the environment), one call on each wire.

The file is SimpleLLMFunc's shape; ``${VAR}`` keeps keys and URLs out of it. Here the
variables point at an embedded test server; set them to a real provider's instead."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from llmplug import OpenAICompatible
from llmplug.testing import LLMTestServer


async def main() -> None:
    with LLMTestServer() as server:
        os.environ.update(
            DEMO_BASE_URL=server.base_url, DEMO_KEY_1="sk-quick-1", DEMO_KEY_2="sk-quick-2"
        )
        models = OpenAICompatible.load_from_json_file(Path(__file__).with_name("provider.json"))
        for name, llm in models["local"].items():
            async with llm:
                reply = await llm.chat([{"role": "user", "content": f"hello from {name}"}])
                print(f"{llm!r}\n  -> {reply.text!r}")
        body = server.requests[0].json
        print(f"api_params went into the body: temperature={body['temperature']}")
        budget = models["local"]["demo-responses"].get_rate_limit_status()["tokens_per_minute"]
        print(f"the Responses model's token budget after one call: {budget}")


if __name__ == "__main__":
    asyncio.run(main())
