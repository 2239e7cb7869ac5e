"""Structured logging through structlog, imported on first use so ``import llmplug`` stays fast.

If the application configured structlog, events go through its configuration; if not, they go to
the standard library logger ``llmplug`` (silent unless the application enables it), so a library
call never prints on its own."""

from __future__ import annotations

import logging
import sys
from typing import Any

from llmplug._vocab._redact import redact_urls

__all__ = ["log_enabled", "log_event"]

_stdlib = logging.getLogger("llmplug")
# A library must not print through logging's last-resort handler when the app set up nothing.
_stdlib.addHandler(logging.NullHandler())
_logger: Any = None
_configured_state: bool | None = None


def _get() -> Any:
    global _logger, _configured_state
    import structlog

    configured = structlog.is_configured()
    if _logger is None or configured != _configured_state:
        _configured_state = configured
        if configured:
            _logger = structlog.get_logger("llmplug")
        else:
            _logger = structlog.wrap_logger(
                _stdlib,
                processors=[
                    structlog.processors.TimeStamper(fmt="iso"),
                    structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
                ],
                wrapper_class=structlog.stdlib.BoundLogger,
            )
    return _logger


def log_enabled(level: int) -> bool:
    """Whether an event at ``level`` goes anywhere: a caller on the hot path asks first, and
    builds its fields only when it does."""
    # Another thread may be importing structlog right now: a module half-way through its
    # import has no is_configured yet.
    is_configured = getattr(sys.modules.get("structlog"), "is_configured", None)
    return (is_configured is not None and is_configured()) or _stdlib.isEnabledFor(level)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Emit one structured event. Callers pass key fingerprints, never keys; URLs in string
    fields lose their secrets here."""
    if not log_enabled(level):
        return
    # An error's text may quote a URL (a plugin's exception, say): its secrets stay out.
    fields = {k: redact_urls(v) if isinstance(v, str) else v for k, v in fields.items()}
    _get().log(level, event, **fields)
