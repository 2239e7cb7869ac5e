"""SimpleLLMFunc's ``SimpleLLMFunc.logger`` names, on the standard library logger
``llmplug.slf`` (silent unless the application configures logging; SimpleLLMFunc prints its
own colored console log instead)."""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from enum import Enum
from typing import Any

__all__ = [
    "LogLevel",
    "app_log",
    "async_log_context",
    "get_current_context_attribute",
    "get_current_trace_id",
    "get_location",
    "get_logger",
    "log_context",
    "push_critical",
    "push_debug",
    "push_error",
    "push_info",
    "push_warning",
    "set_current_context_attribute",
    "setup_logger",
]

_logger = logging.getLogger("llmplug.slf")
_EMPTY: dict[str, Any] = {}  # never mutated: every change sets a new dict
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "llmplug_slf_log_context",
    default=_EMPTY,
)


class LogLevel(Enum):
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR
    CRITICAL = logging.CRITICAL


def _log(level: int, message: str, trace_id: str, location: str | None, **kw: Any) -> None:
    extra = {**_context.get(), **kw}
    if trace_id:
        extra["trace_id"] = trace_id
    if location:
        extra["location"] = location
    _logger.log(level, message, extra={"slf": extra})


def app_log(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.INFO, message, trace_id, location, **kw)


def push_debug(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.DEBUG, message, trace_id, location, **kw)


def push_info(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.INFO, message, trace_id, location, **kw)


def push_warning(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.WARNING, message, trace_id, location, **kw)


def push_error(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.ERROR, message, trace_id, location, **kw)


def push_critical(message: str, trace_id: str = "", location: str | None = None, **kw: Any) -> None:
    _log(logging.CRITICAL, message, trace_id, location, **kw)


def get_location(depth: int = 1) -> str:
    """``file:line`` of the caller (``depth`` frames up)."""
    frame = inspect.currentframe()
    for _ in range(depth + 1):
        if frame is None:
            break
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame else "unknown"


@contextmanager
def log_context(**attributes: Any) -> Iterator[None]:
    """Log calls inside inherit ``attributes`` (``trace_id``, ``function_name``, ...)."""
    token = _context.set({**_context.get(), **attributes})
    try:
        yield
    finally:
        _context.reset(token)


@asynccontextmanager
async def async_log_context(**attributes: Any) -> AsyncIterator[None]:
    with log_context(**attributes):
        yield


def get_current_trace_id() -> str:
    return str(_context.get().get("trace_id", ""))


def get_current_context_attribute(name: str) -> Any:
    return _context.get().get(name)


def set_current_context_attribute(name: str, value: Any) -> None:
    _context.set({**_context.get(), name: value})


def get_logger() -> logging.Logger:
    return _logger


def setup_logger(*_: Any, **__: Any) -> logging.Logger:
    """Accepted for SimpleLLMFunc code; configure the ``llmplug.slf`` logger instead."""
    return _logger
