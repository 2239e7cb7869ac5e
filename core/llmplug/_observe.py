"""What the observer hooks are told: one neutral record per attempt and per call.

Records are built only when some plugin implements an observer hook (``Registry.observed``),
so with none installed a call costs what it did before the hooks existed."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING, Literal

import msgspec

from ._errors import LLMError
from ._log import log_event
from ._types import Completion, Done, StreamEvent, Usage

if TYPE_CHECKING:
    from ._call import Call
    from ._pipeline import Pipeline
    from ._registry import Registry

__all__ = ["AttemptInfo", "CallInfo", "observed_complete", "observed_stream", "retry_reason"]

Status = Literal["ok", "error", "interrupted"]


class AttemptInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP attempt of a call, as it ended.

    ``status`` is ``"ok"`` (a reply), ``"error"`` (``error_type`` names the
    :class:`llmplug.LLMError` class, ``http_status`` the provider's status if there was one) or
    ``"interrupted"`` (cancelled, or the caller's deadline passed). ``retry_reason`` says why
    this attempt was made: None for a call's first, else the previous attempt's error (e.g.
    ``"429 RateLimitError"``). ``key`` is the key's fingerprint, never the key. ``call_id``
    is the same for every attempt of one call and its :class:`CallInfo`."""

    call_id: int
    provider: str
    model: str
    wire: str
    attempt: int
    status: Status
    started: float
    duration_s: float
    stream: bool
    key: str | None = None
    http_status: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    retry_reason: str | None = None
    usage: Usage | None = None
    cost: float | None = None
    response_model: str | None = None
    request_id: str | None = None
    trace_id: str | None = None


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One call (all its attempts), as it ended: ``attempts`` counts the HTTP attempts made;
    ``status`` and ``error_type`` are the call's outcome, as the caller saw it; ``call_id``
    is its attempts' ``call_id``."""

    call_id: int
    provider: str
    model: str
    wire: str
    status: Status
    started: float
    duration_s: float
    stream: bool
    attempts: int
    error_type: str | None = None
    http_status: int | None = None
    usage: Usage | None = None
    cost: float | None = None
    response_model: str | None = None
    trace_id: str | None = None


def retry_reason(error: LLMError | None) -> str | None:
    if error is None:
        return None
    name = type(error).__name__
    return f"{error.status} {name}" if error.status else name


def notify(registry: Registry, hook: str, info: AttemptInfo | CallInfo) -> None:
    """Tell every observer; one that raises is logged and does not change the call."""
    try:
        getattr(registry.hook, hook)(info=info)
    except Exception as exc:
        log_event(
            logging.WARNING,
            "llm.observer_failed",
            hook=hook,
            error=f"{type(exc).__name__}: {exc}",
        )


def _call_info(
    pipe: Pipeline,
    call: Call,
    started: float,
    t0: float,
    completion: Completion | None,
    error: BaseException | None,
) -> CallInfo:
    status: Status = (
        "ok" if error is None else "error" if isinstance(error, LLMError) else "interrupted"
    )
    return CallInfo(
        call_id=id(call),
        provider=pipe.provider,
        model=pipe.model,
        wire=call.wire,
        status=status,
        started=started,
        duration_s=time.perf_counter() - t0,
        stream=call.stream,
        attempts=call.attempt + 1,
        error_type=None if error is None else type(error).__name__,
        http_status=error.status if isinstance(error, LLMError) else None,
        usage=completion.usage if completion else None,
        cost=completion.cost if completion else None,
        response_model=completion.model if completion else None,
        trace_id=call.trace_id,
    )


async def observed_complete(
    pipe: Pipeline, call: Call, run: Callable[[Call], object]
) -> Completion:
    started, t0 = time.time(), time.perf_counter()
    try:
        completion: Completion = await run(call)  # type: ignore[misc]
    except BaseException as exc:
        notify(pipe.registry, "observe_call", _call_info(pipe, call, started, t0, None, exc))
        raise
    notify(pipe.registry, "observe_call", _call_info(pipe, call, started, t0, completion, None))
    return completion


async def observed_stream(
    pipe: Pipeline, call: Call, events: AsyncGenerator[StreamEvent, None]
) -> AsyncGenerator[StreamEvent, None]:
    started, t0 = time.time(), time.perf_counter()
    completion: Completion | None = None
    error: BaseException | None = None
    try:
        async for event in events:
            if isinstance(event, Done):
                completion = event.completion
            yield event
    except BaseException as exc:
        if completion is None:  # after Done, the caller's leaving early is no failure
            error = exc
        raise
    finally:
        await events.aclose()
        if completion is None and error is None:
            error = GeneratorExit()  # the caller stopped reading before the end
        notify(
            pipe.registry, "observe_call", _call_info(pipe, call, started, t0, completion, error)
        )
