"""Writing a plugin: a key rotation strategy, and a wrapper that signs every request.

An installed plugin is found through the ``llmplug`` entry-point group; here the same module
objects are registered by hand in an isolated registry, next to the default plugins."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Generator

from llmplug import APIKeyPool, Call, HTTPRequest, KeyLease, OpenAICompatible, Registry, hookimpl
from llmplug.testing import LLMTestServer


class StickyKeys:
    """Strategy "sticky": the same conversation always uses the same key (by its first
    message), so a provider's prompt cache keeps working."""

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        if strategy != "sticky":
            return None  # not ours: installing this plugin changes nothing else
        seed = call.messages[0].text.encode() if call.messages else b""
        healthy = pool.healthy() or list(range(len(pool)))
        return pool.lease(healthy[int(hashlib.sha256(seed).hexdigest(), 16) % len(healthy)])


class Signer:
    """Wraps build_request for every wire format: adds a body signature header."""

    @hookimpl(wrapper=True)
    def build_request(
        self, wire: str, call: Call, key: str
    ) -> Generator[None, HTTPRequest | None, HTTPRequest | None]:
        request = yield
        if request is not None:
            request.headers["x-body-sha256"] = hashlib.sha256(request.content).hexdigest()[:16]
        return request


async def main() -> None:
    # The installed plugins (the defaults included), plus these two.
    registry = Registry(plugins=[StickyKeys(), Signer()])
    print("plugins:", ", ".join(p.name for p in registry.plugins()))
    with LLMTestServer() as server:
        pool = APIKeyPool(["sk-a", "sk-b", "sk-c"], "local", strategy="sticky")
        async with OpenAICompatible(pool, "demo-model", server.base_url, registry=registry) as llm:
            for convo in ("ada", "bob", "carol", "ada", "bob", "carol"):
                await llm.chat([{"role": "user", "content": convo}])
        keys = ["sk-a", "sk-b", "sk-c"]
        for r in server.requests:
            fp = pool.fingerprints[keys.index(r.api_key or "")]
            print(
                f"  conversation {r.last_user_text!r:8} -> {fp}, sig {r.headers['x-body-sha256']}"
            )


if __name__ == "__main__":
    asyncio.run(main())
