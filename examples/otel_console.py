"""OpenTelemetry for llmplug: with llmplug-otel installed, configure the SDK as usual and every
call is a GenAI span. Here the spans of one tool round trip through ``@llm_chat`` go to the
console exporter, under a span of the application's; then a few metrics are printed.
See docs/observability.md for what each span and metric holds."""

from __future__ import annotations

import asyncio

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import llmplug_otel
from llmplug import APIKeyPool, OpenAICompatible, llm_chat, tool
from llmplug.testing import LLMTestServer, Reply, ToolCallReply


@tool
def get_weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: the city's name
    """
    return f"sunny, 21 C in {city}"


async def main() -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-bot"}))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    # Opt-in: record messages (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true does
    # the same); send the traceparent to the provider (LLMPLUG_OTEL_PROPAGATE=true).
    llmplug_otel.configure(capture_content=True, propagate=True)

    with LLMTestServer() as server:
        llm = OpenAICompatible(APIKeyPool(["sk-example"], "local"), "demo-model", server.base_url)
        llmplug_otel.watch(llm)  # its pool and limiter become gauges

        @llm_chat(llm_interface=llm, toolkit=[get_weather], session_id="conversation-1")
        async def assistant(message: str) -> None:
            """You answer questions about the weather."""

        server.push(
            Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Paris"})]),
            Reply(text="It is sunny in Paris, 21 C."),
        )
        with trace.get_tracer("weather-bot").start_as_current_span("answer question"):
            async for reply, _history in assistant("What is the weather in Paris?"):
                if reply:
                    print(f"# assistant: {reply}")
        print(f"# the provider got traceparent {server.requests[0].headers['traceparent']}")
        await llm.aclose()

    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    attrs = p.attributes or {}
                    kind = attrs.get("gen_ai.token.type") or attrs.get("llmplug.key.state")
                    name = f"{metric.name}[{kind}]" if kind else metric.name
                    if isinstance(p, HistogramDataPoint):
                        print(f"# metric {name}: count={p.count} sum={p.sum:g}")
                    elif isinstance(p, NumberDataPoint):
                        print(f"# metric {name}: {p.value}")


if __name__ == "__main__":
    asyncio.run(main())
