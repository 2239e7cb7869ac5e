"""The plugin's two switches, both off by default: recording message content, and sending
the trace context to the provider. Read on every call, so an application (or a test) may
flip them at any time; ``configure`` overrides the environment."""

from __future__ import annotations

import os

__all__ = ["CAPTURE_ENV", "PROPAGATE_ENV", "capture_content", "configure", "propagate"]

#: The variable the OpenTelemetry GenAI instrumentations share.
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Ours: the conventions name none for sending the trace context to a GenAI provider.
PROPAGATE_ENV = "LLMPLUG_OTEL_PROPAGATE"

# "true" is the historical value; the newer instrumentations also take these modes, of which
# this plugin records the span part (it emits no events).
_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})

_overrides: dict[str, bool] = {}


def configure(*, capture_content: bool | None = None, propagate: bool | None = None) -> None:
    """Turn content capture or trace propagation on or off from code, over the environment;
    None goes back to what the environment says."""
    for name, value in (("capture", capture_content), ("propagate", propagate)):
        if value is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = value


def _switch(name: str, env: str) -> bool:
    forced = _overrides.get(name)
    if forced is not None:
        return forced
    return os.environ.get(env, "").strip().lower() in _ON


def capture_content() -> bool:
    """Whether spans record messages, system instructions, tool arguments and results."""
    return _switch("capture", CAPTURE_ENV)


def propagate() -> bool:
    """Whether requests carry the W3C ``traceparent`` (and ``tracestate``) of their span."""
    return _switch("propagate", PROPAGATE_ENV)
