"""SimpleLLMFunc's ``SimpleLLMFunc.observability``: its Langfuse integration is not part of
llmplug (trace with the ``llmplug-otel`` plugin instead). ``flush_all_observations`` is kept,
doing nothing, so that programs ending with it run."""

from __future__ import annotations

__all__ = ["flush_all_observations"]


def flush_all_observations() -> None:
    """Nothing to flush: llmplug sends no Langfuse observations."""
