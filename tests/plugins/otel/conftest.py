"""Every test here exports to memory, with the plugin's switches as the environment says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmplug_otel
from tests.plugins.otel import _sdk


@pytest.fixture(autouse=True)
def _sdk_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _sdk.install()
    monkeypatch.delenv(llmplug_otel.CAPTURE_ENV, raising=False)
    monkeypatch.delenv(llmplug_otel.PROPAGATE_ENV, raising=False)
    llmplug_otel.configure()
    yield
    llmplug_otel.configure(capture_content=None, propagate=None)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    _sdk.EXPORTER.clear()
    return _sdk.EXPORTER
