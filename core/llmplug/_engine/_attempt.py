"""The books of one attempt: its key lease, its token-budget charge, its log event.

Every way an attempt can end goes through here exactly once: a reply (:meth:`Attempt.ok`), an
error (:meth:`Attempt.failed`), or an interruption nobody caught: cancellation, a deadline, a
generator closed by its loop (:meth:`Attempt.end`). All of it is synchronous, so it cannot be
cut short by a second cancellation; the caller runs it before any await of its cleanup."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from llmplug._vocab._classify import kind_of
from llmplug._vocab._errors import LLMError
from llmplug._vocab._numbers import safe_usage

from ._log import log_enabled, log_event
from ._observe import AttemptInfo, Status, call_id_of, notify, retry_reason

if TYPE_CHECKING:
    from llmplug._limits._keys import KeyLease
    from llmplug._vocab._call import Call
    from llmplug._vocab._ratelimits import RateLimits
    from llmplug._vocab._types import Completion

    from ._pipeline import Pipeline

__all__ = ["Attempt", "give_back"]


def give_back(limiter: object, amount: float) -> None:
    """Return ``amount`` to a limiter that can take it back (a limiter plugin without
    ``adjust`` just keeps it)."""
    adjust = getattr(limiter, "adjust", None)
    if amount and callable(adjust):
        adjust(amount)


class Attempt:
    __slots__ = ("call", "charged", "ended", "lease", "pipe", "retry_of", "t0", "ttft")

    def __init__(self, pipe: Pipeline, call: Call, retry_of: LLMError | None = None) -> None:
        self.pipe = pipe
        self.call = call
        #: The previous attempt's error, for the observers' ``retry_reason``.
        self.retry_of = retry_of
        self.lease: KeyLease | None = None
        self.charged = 0.0
        self.t0 = time.perf_counter()
        self.ended = False
        #: Seconds from the request going out to the stream's first event (streams only).
        self.ttft: float | None = None

    def first_event(self) -> None:
        """The stream's first event is being handed to the caller."""
        self.ttft = time.perf_counter() - self.t0

    def _settle(self, completion: Completion | None) -> None:
        """Reconcile the token budget's estimate with what the reply says it used; an attempt
        without a reply gives the estimate back."""
        used = completion.usage.total_tokens if completion and completion.usage else None
        give_back(
            self.pipe.token_limiter,
            self.charged - used if used is not None else 0.0 if completion else self.charged,
        )
        self.charged = 0.0

    def give_back(self) -> None:
        """The token budget's charge goes back: nothing was sent."""
        self._settle(None)

    def ok(self, c: Completion, headers: Any, limits: RateLimits | None) -> Completion:
        """The books of a reply; returns it with its cost and the server's request id."""
        pipe, lease = self.pipe, self.lease
        assert lease is not None
        self.ended = True
        try:
            if c.usage is not None and (safe := safe_usage(c.usage)) is not c.usage:
                c = msgspec.structs.replace(c, usage=safe)
            cost = pipe.pricing.cost(c.usage) if pipe.pricing is not None and c.usage else None
            request_id = headers.get("x-request-id")
            if cost is not None or request_id is not None:
                c = msgspec.structs.replace(c, cost=cost, request_id=request_id)
            pipe.usage.add(c.usage, cost)
            self._settle(c)
            # After settling: what the server says is left overrides the estimate's give-back.
            pipe.observe(limits, lease)
        finally:
            # Whatever a step above raised, the key goes back: a lease must never leak.
            lease.release()
        if log_enabled(logging.DEBUG):  # a success is logged at DEBUG: usually nowhere
            u = c.usage
            self._log(
                logging.DEBUG,
                "llm.attempt",
                status=200,
                input_tokens=u.input_tokens if u else None,
                output_tokens=u.output_tokens if u else None,
            )
        if pipe.registry.observed:
            self._observe("ok", completion=c)
        return c

    def failed(self, error: LLMError) -> None:
        """The attempt failed with ``error``: its text loses any piece of the key first, then
        the key's error count, the budget's give-back and the log event."""
        if self.ended:
            return
        self.ended = True
        lease = self.lease
        if lease is not None:
            error.message = lease.redact(error.message)
            error.args = (error.message, *error.args[1:])
            error.key_id = error.key_id or lease.fingerprint
            lease.release(error=True)
        self._settle(None)
        self._failure(type(error).__name__, error.status, error.message)
        if self.pipe.registry.observed:
            self._observe("error", error=error)

    def end(self) -> None:
        """In ``finally``: an attempt neither ``ok`` nor ``failed`` was interrupted. Its key and
        its budget go back, and the log says so."""
        if self.ended:
            return
        self.ended = True
        if self.lease is not None:
            self.lease.release()
        self._settle(None)
        self._failure("Interrupted", None, "the attempt was cancelled or its deadline passed")
        if self.pipe.registry.observed:
            self._observe("interrupted")

    def _observe(
        self, status: Status, completion: Completion | None = None, error: LLMError | None = None
    ) -> None:
        pipe, call, lease = self.pipe, self.call, self.lease
        duration = time.perf_counter() - self.t0
        info = AttemptInfo(
            call_id=call_id_of(call),
            provider=pipe.provider,
            model=pipe.model,
            wire=call.wire,
            attempt=call.attempt,
            status=status,
            started=time.time() - duration,
            duration_s=duration,
            stream=call.stream,
            key=lease.fingerprint if lease is not None else None,
            http_status=error.status if error is not None else None,
            error_type=type(error).__name__ if error is not None else None,
            error_message=error.message if error is not None else None,
            error_kind=kind_of(error) if error is not None else None,
            retry_reason=retry_reason(self.retry_of),
            usage=completion.usage if completion is not None else None,
            cost=completion.cost if completion is not None else None,
            response_model=completion.model if completion is not None else None,
            request_id=completion.request_id if completion is not None else None,
            trace_id=call.trace_id,
            time_to_first_token_s=self.ttft,
        )
        notify(pipe.registry, "observe_attempt", info)

    def _latency(self) -> float:
        return round((time.perf_counter() - self.t0) * 1000, 1)

    def _failure(self, error: str, status: int | None, message: str) -> None:
        self._log(
            logging.WARNING, "llm.attempt_failed", status=status, error=error, message=message
        )

    def _log(self, level: int, event: str, **fields: Any) -> None:
        log_event(
            level,
            event,
            provider=self.pipe.provider,
            model=self.pipe.model,
            key=self.lease.fingerprint if self.lease is not None else None,
            attempt=self.call.attempt,
            latency_ms=self._latency(),
            trace_id=self.call.trace_id,
            **fields,
        )
