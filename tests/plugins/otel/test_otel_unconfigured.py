"""Installed but not configured (no OpenTelemetry provider set): the plugin records nothing and
builds nothing per call, and a provider set later is used from the next call on. In a process
of its own: the other tests here set the process's providers, which the API allows once."""

from __future__ import annotations

import os
import subprocess
import sys

#: Around each script's own ``main(url)``: a test server, and an interface's calls to it.
PROLOGUE = """
import asyncio
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmplug_otel
from llmplug import APIKeyPool, OpenAICompatible
from llmplug.testing import LLMTestServer
from llmplug_otel import _metrics, _spans


def interface(url: str) -> OpenAICompatible:
    return OpenAICompatible(APIKeyPool(["sk-test"], "test", shared=False), "m", url)
"""
EPILOGUE = """
with LLMTestServer() as server:
    asyncio.run(main(server.base_url))
"""


def run(main: str, env: dict[str, str] | None = None) -> str:
    """What ``main`` prints, run in a process of its own (which must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", PROLOGUE + main + EPILOGUE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


SCRIPT = """
async def main(url: str) -> None:
    llm = interface(url)
    assert "otel" in [p.name for p in llm.pipeline.registry.plugins()]
    for _ in range(3):
        await llm.chat("hi")
        async for _ in llm.chat_stream("hi"):
            pass
    # Nothing was made for the calls: no span kept, not even the metrics' instruments.
    assert _spans._live == {} and _metrics._instruments is None

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    await llm.chat("traced")
    print(sorted(s.name for s in exporter.get_finished_spans()))
    await llm.aclose()
"""


def test_unconfigured_it_does_nothing_and_a_provider_set_later_is_used() -> None:
    assert run(SCRIPT) == "['chat m', 'chat m attempt']"


NAMED_BY_THE_ENVIRONMENT = """
async def main(url: str) -> None:
    llm = interface(url)
    # Nothing here asked the API for its provider: the plugin did, and found it on.
    await llm.chat("first")
    assert _metrics._instruments is not None
    exporter = InMemorySpanExporter()
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
    await llm.chat("traced")
    print(sorted(s.name for s in exporter.get_finished_spans()))
    await llm.aclose()
"""


def test_a_provider_named_by_the_environment_is_used() -> None:
    env = {**os.environ, "OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"}
    assert run(NAMED_BY_THE_ENVIRONMENT, env) == "['chat m', 'chat m attempt']"


NAMED_LATER = """
async def main(url: str) -> None:
    llm = interface(url)
    await llm.chat("first")
    assert _metrics._instruments is None  # off: nothing named, nothing set
    os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
    llmplug_otel._recheck_at = 0.0  # the next look is due now (they are a second apart)
    await llm.chat("second")
    print(_metrics._instruments is not None)
    await llm.aclose()
"""


def test_a_provider_named_in_the_environment_later_is_used_at_the_next_look() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_")}
    assert run(NAMED_LATER, env) == "True"
