"""A rate limiter of a new kind, added by a plugin through the acquire_rate hook."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from llmplug import ConfigError, LLMInterface, Registry, hookimpl
from llmplug.testing import LLMTestServer

MakeLLM = Callable[..., LLMInterface]


class Gate:
    """A limiter of kind "gate": requests wait until the gate opens; it counts the waits."""

    kind = "gate"

    def __init__(self, expect: int = 1) -> None:
        self.open = asyncio.Event()
        self.all_waiting = asyncio.Event()
        self.expect = expect
        self.costs: list[float] = []

    async def wait(self, cost: float) -> None:
        self.costs.append(cost)
        if len(self.costs) >= self.expect:
            self.all_waiting.set()
        await self.open.wait()


class GatePlugin:
    @hookimpl
    def acquire_rate(self, limiter: object, cost: float) -> Awaitable[None] | None:
        return limiter.wait(cost) if isinstance(limiter, Gate) else None


async def test_a_plugin_limiter_holds_requests_until_it_admits_them(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    gate = Gate(expect=3)
    llm = make_llm(limiter=gate, registry=Registry(plugins=[GatePlugin()]))
    calls = [asyncio.create_task(llm.chat(f"call {i}")) for i in range(3)]
    await gate.all_waiting.wait()  # every call reached the limiter...
    assert server.requests == []  # ...and none was sent before it admitted them
    gate.open.set()
    assert [c.text for c in await asyncio.gather(*calls)] == [f"echo: call {i}" for i in range(3)]
    assert gate.costs == [1.0, 1.0, 1.0]


async def test_the_default_bucket_is_still_used_by_other_interfaces(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    registry = Registry(plugins=[GatePlugin()])
    plain = make_llm(registry=registry, rate_limit_capacity=5, rate_limit_refill_rate=0.001)
    await plain.chat("hi")
    assert plain.get_rate_limit_status()["available"] == 4


async def test_a_limiter_no_plugin_knows_is_a_clear_error(make_llm: MakeLLM) -> None:
    llm = make_llm(limiter=Gate())
    with pytest.raises(ConfigError, match="no plugin provides the rate limiter 'gate'"):
        await llm.chat("hi")
