"""One call, end to end: select_key -> acquire_rate -> build_request -> send -> parse_stream,
with the retry policy around it. Every lease is released in ``finally``, cancellation included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from ._call import Call
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
    NoKeyAvailableError,
    StreamError,
    status_error_class,
)
from ._estimate import estimate_call_tokens
from ._keys import APIKeyPool, KeyLease
from ._log import log_event
from ._parser import StreamParser
from ._policy import RetryPolicy, rate_limit_reset
from ._registry import Registry
from ._retry import parse_error_body
from ._sse import SSEDecoder, SSETooLarge
from ._transport import Transport
from ._types import Completion, Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from ._usage import UsageTracker

__all__ = ["Pipeline"]


class Pipeline:
    """The attempt loop of one interface."""

    __slots__ = (
        "limiter",
        "model",
        "policy",
        "pool",
        "provider",
        "registry",
        "timeout",
        "token_limiter",
        "total_timeout",
        "transport",
        "usage",
    )

    def __init__(
        self,
        *,
        registry: Registry,
        pool: APIKeyPool,
        limiter: object,
        token_limiter: object | None,
        transport: Transport,
        provider: str,
        model: str,
        policy: RetryPolicy,
        usage: UsageTracker,
        timeout: Any = None,
        total_timeout: float | None = None,
    ) -> None:
        self.registry = registry
        self.pool = pool
        self.limiter = limiter
        self.token_limiter = token_limiter
        self.transport = transport
        self.provider = provider
        self.model = model
        self.policy = policy
        self.usage = usage
        self.timeout = timeout
        self.total_timeout = total_timeout

    # -- the steps -----------------------------------------------------------------------------

    async def _lease(self, call: Call) -> KeyLease:
        wait = self.pool.wait_turn(self.policy.key_wait_timeout)
        if wait > 0:
            if wait > self.policy.key_wait_timeout:
                raise NoKeyAvailableError(
                    f"every key is cooling down, the first for {wait:.1f}s more (more than "
                    f"key_wait_timeout={self.policy.key_wait_timeout:g}s): {self.pool.describe()}",
                    keys=self.pool.status(),
                    provider=self.provider,
                    model=self.model,
                )
            log_event(
                logging.INFO,
                "llm.keys_cooling",
                provider=self.provider,
                wait_s=wait,
                trace_id=call.trace_id,
            )
            await asyncio.sleep(wait)
        lease = self.registry.hook.select_key(
            strategy=self.pool.strategy, pool=self.pool, call=call
        )
        if lease is None:
            raise ConfigError(f"no plugin provides the key strategy {self.pool.strategy!r}")
        return lease  # type: ignore[no-any-return]

    async def _wait_for(self, limiter: object, cost: float) -> None:
        waiter = self.registry.hook.acquire_rate(limiter=limiter, cost=cost)
        if waiter is None:
            kind = getattr(limiter, "kind", type(limiter).__name__)
            raise ConfigError(f"no plugin provides the rate limiter {kind!r}")
        await waiter

    async def _acquire(self, call: Call) -> float:
        """Wait for the request budget, then the token budget; returns the tokens charged."""
        await self._wait_for(self.limiter, 1.0)
        if self.token_limiter is None:
            return 0.0
        charged = float(estimate_call_tokens(call.messages, call.tools, call.params))
        await self._wait_for(self.token_limiter, charged)
        return charged

    def _settle(self, charged: float, completion: Completion | None) -> None:
        """Reconcile the token budget's estimate with what the reply says it used (a failed
        attempt gives the estimate back)."""
        adjust = getattr(self.token_limiter, "adjust", None)
        if charged and callable(adjust):
            used = completion.usage.total_tokens if completion and completion.usage else None
            adjust(charged - used if used is not None else 0.0 if completion else charged)

    def _observe(self, headers: Any, lease: KeyLease) -> None:
        """Rate-limit headers of a successful reply: a key with nothing left rests until its
        reset; with one key, the local budgets also believe the server when it says less."""
        rem_req = _number(headers.get("x-ratelimit-remaining-requests"))
        rem_tok = _number(headers.get("x-ratelimit-remaining-tokens"))
        if rem_req is None and rem_tok is None:
            return
        if rem_req == 0 or rem_tok == 0:
            reset = rate_limit_reset(headers)
            if reset:
                self.pool.cool_down(lease.index, reset, "rate limit used up (x-ratelimit headers)")
        if len(self.pool) == 1:
            for limiter, remaining in ((self.limiter, rem_req), (self.token_limiter, rem_tok)):
                tighten = getattr(limiter, "tighten", None)
                if remaining is not None and callable(tighten):
                    tighten(remaining)

    async def _send(self, call: Call, lease: KeyLease) -> Any:
        request = self.registry.hook.build_request(wire=call.wire, call=call, key=lease.key)
        if request is None:
            raise ConfigError(f"no plugin provides the wire format {call.wire!r}")
        try:
            response = await self.transport.send(request, call.timeout or self.timeout)
        except self.transport.timeout_error as exc:
            raise self._connection_error(APITimeoutError, exc, lease) from None
        except self.transport.request_error as exc:
            raise self._connection_error(APIConnectionError, exc, lease) from None
        return response

    def _parser(self, call: Call) -> StreamParser:
        parser = self.registry.hook.parse_stream(wire=call.wire, call=call)
        if parser is None:
            raise ConfigError(f"no plugin parses the wire format {call.wire!r}")
        return parser  # type: ignore[no-any-return]

    async def _read(self, response: Any, lease: KeyLease) -> bytes:
        try:
            return await response.aread()  # type: ignore[no-any-return]
        except self.transport.timeout_error as exc:
            raise self._connection_error(APITimeoutError, exc, lease) from None
        except self.transport.request_error as exc:
            raise self._connection_error(APIConnectionError, exc, lease) from None

    async def _close(self, response: Any) -> None:
        """Close a response from :meth:`_send`: exactly once, whatever happened to it."""
        try:
            await response.aclose()
        finally:
            self.transport.response_closed()

    def _connection_error(
        self, cls: type[LLMError], exc: BaseException, lease: KeyLease
    ) -> LLMError:
        what = "timed out" if cls is APITimeoutError else "failed"
        text = _redact(str(exc) or type(exc).__name__, lease)
        return cls(
            f"request {what}: {text}",
            provider=self.provider,
            model=self.model,
            key_id=lease.fingerprint,
        )

    def _status_error(self, response: Any, body: bytes, lease: KeyLease) -> APIStatusError:
        status: int = response.status_code
        err = parse_error_body(body, status, getattr(response, "reason_phrase", "") or "")
        return status_error_class(status)(
            _redact(err.message, lease),
            provider=self.provider,
            model=self.model,
            status=status,
            code=err.code,
            type=err.type,
            key_id=lease.fingerprint,
            headers=dict(response.headers),
        )

    def _total_timeout_error(self, total: float) -> APITimeoutError:
        return APITimeoutError(
            f"the call took longer than total_timeout={total:g}s",
            provider=self.provider,
            model=self.model,
        )

    # -- logging -------------------------------------------------------------------------------

    def _failed(
        self, error: LLMError, lease: KeyLease | None, call: Call, t0: float, charged: float
    ) -> None:
        """The books after a failed attempt: the key's error count, the token budget's
        estimate given back, and the log event."""
        self._settle(charged, None)
        if lease is not None:
            lease.release(error=True)
            self._log_failure(error, lease, call, t0)

    def _log_failure(self, error: LLMError, lease: KeyLease, call: Call, t0: float) -> None:
        log_event(
            logging.WARNING,
            "llm.attempt_failed",
            provider=self.provider,
            model=self.model,
            key=lease.fingerprint,
            attempt=call.attempt,
            status=error.status,
            error=type(error).__name__,
            message=error.message,
            latency_ms=round((time.perf_counter() - t0) * 1000, 1),
            trace_id=call.trace_id,
        )

    def _done(
        self, c: Completion, response: Any, lease: KeyLease, call: Call, t0: float, charged: float
    ) -> None:
        self.usage.add(c.usage)
        self._settle(charged, c)
        # After settling: what the server says is left overrides the estimate's give-back.
        self._observe(response.headers, lease)
        u = c.usage
        log_event(
            logging.DEBUG,
            "llm.attempt",
            provider=self.provider,
            model=self.model,
            key=lease.fingerprint,
            attempt=call.attempt,
            status=200,
            latency_ms=round((time.perf_counter() - t0) * 1000, 1),
            input_tokens=u.input_tokens if u else None,
            output_tokens=u.output_tokens if u else None,
            trace_id=call.trace_id,
        )

    # -- the two ways to call ------------------------------------------------------------------

    async def complete(self, call: Call) -> Completion:
        total = call.total_timeout or self.total_timeout
        if total is None:
            return await self._complete(call)
        try:
            async with asyncio.timeout(total):
                return await self._complete(call)
        except TimeoutError:
            raise self._total_timeout_error(total) from None

    async def _complete(self, call: Call) -> Completion:
        retries = 0
        while True:
            lease = await self._lease(call)
            t0 = time.perf_counter()
            charged = 0.0
            try:
                charged = await self._acquire(call)
                response = await self._send(call, lease)
                try:
                    body = await self._read(response, lease)
                finally:
                    await self._close(response)
                if response.status_code >= 400:
                    raise self._status_error(response, body, lease)
                completion = self._parser(call).parse_body(body)
                self._done(completion, response, lease, call, t0, charged)
                return completion
            except LLMError as exc:
                error = exc
                self._failed(error, lease, call, t0, charged)
            finally:
                lease.release()
            delay = self.policy.plan(error, lease, retries)
            retries += 1
            call.attempt = retries
            if delay > 0:
                await asyncio.sleep(delay)

    async def stream(self, call: Call) -> AsyncGenerator[StreamEvent, None]:
        total = call.total_timeout or self.total_timeout
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        retries = 0
        while True:
            emitted = False
            parser: StreamParser | None = None
            lease: KeyLease | None = None
            response: Any = None
            charged = 0.0
            t0 = time.perf_counter()
            try:
                # A deadline scope around each await only, never across a yield: the caller's
                # own code between events must not be cancelled by our timeout.
                async with asyncio.timeout_at(deadline):
                    lease = await self._lease(call)
                    t0 = time.perf_counter()
                    charged = await self._acquire(call)
                    response = await self._send(call, lease)
                    if response.status_code >= 400:
                        raise self._status_error(response, await self._read(response, lease), lease)
                    parser = self._parser(call)
                    whole = response.headers.get("content-type", "").startswith("application/json")
                    body = await self._read(response, lease) if whole else None
                if body is not None:
                    # The server ignored "stream": answer with the same events a stream gives.
                    completion = parser.parse_body(body)
                    self._done(completion, response, lease, call, t0, charged)
                    for event in _events_of(completion):
                        emitted = True
                        yield event
                    return
                events = self._events(response, parser, lease)
                try:
                    while True:
                        async with asyncio.timeout_at(deadline):
                            nxt = await anext(events, None)
                        if nxt is None:
                            break
                        emitted = True
                        yield nxt
                finally:
                    await events.aclose()
                completion = parser.result()
                self._done(completion, response, lease, call, t0, charged)
                yield Done(completion)
                return
            except TimeoutError:
                if total is None:
                    raise
                timed_out = self._total_timeout_error(total)
                self._failed(timed_out, lease, call, t0, charged)
                if not emitted:
                    raise timed_out from None
                raise self._broken(timed_out, parser, lease) from timed_out
            except LLMError as exc:
                error = exc
                self._failed(error, lease, call, t0, charged)
                if emitted:
                    if isinstance(error, StreamError):
                        raise
                    raise self._broken(error, parser, lease) from error
            finally:
                if response is not None:
                    await self._close(response)
                if lease is not None:
                    lease.release()
            if lease is None:
                raise error
            delay = self.policy.plan(error, lease, retries)
            retries += 1
            call.attempt = retries
            if delay > 0:
                async with asyncio.timeout_at(deadline):
                    await asyncio.sleep(delay)

    def _broken(
        self, exc: LLMError, parser: StreamParser | None, lease: KeyLease | None
    ) -> StreamError:
        return StreamError(
            f"the stream broke after output reached the caller: {exc.message}",
            partial=parser.result() if parser is not None else None,
            provider=self.provider,
            model=self.model,
            status=exc.status,
            key_id=lease.fingerprint if lease else None,
        )

    async def _events(
        self, response: Any, parser: StreamParser, lease: KeyLease
    ) -> AsyncGenerator[StreamEvent, None]:
        decoder = SSEDecoder()
        chunks = response.aiter_bytes()
        try:
            async for chunk in chunks:
                for sse in decoder.feed(chunk):
                    for event in parser.feed(sse):
                        yield event
                    if parser.done:
                        await _drain(chunks)
                        return
            for sse in decoder.close():
                for event in parser.feed(sse):
                    yield event
        except SSETooLarge as exc:
            raise StreamError(
                str(exc),
                partial=parser.result(),
                provider=self.provider,
                model=self.model,
                key_id=lease.fingerprint,
            ) from None
        except self.transport.timeout_error as exc:
            raise self._connection_error(APITimeoutError, exc, lease) from None
        except self.transport.request_error as exc:
            raise self._connection_error(APIConnectionError, exc, lease) from None
        if not parser.done:
            raise StreamError(
                "the stream ended before its end marker (truncated)",
                partial=parser.result(),
                provider=self.provider,
                model=self.model,
                key_id=lease.fingerprint,
            )


#: After a stream's end marker, how much more body and time we spend to reach the end of the
#: HTTP body: a connection read to its end goes back to the pool (no new TCP+TLS handshake for
#: the next call); one that is not is closed.
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 0.25


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    seen = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for chunk in chunks:
                seen += len(chunk)
                if seen > _DRAIN_BYTES:
                    return
    except Exception:  # the answer is complete: the connection is just not reused
        return


def _redact(text: str, lease: KeyLease) -> str:
    """A server or client library may echo the key back: never pass it on."""
    key = lease.key
    return text.replace(key, lease.fingerprint) if key in text else text


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _events_of(c: Completion) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    if c.reasoning:
        events.append(ReasoningDelta(c.reasoning))
    if c.text:
        events.append(TextDelta(c.text))
    for i, tc in enumerate(c.tool_calls):
        events.append(ToolCallDelta(index=i, id=tc.id, name=tc.name, arguments=tc.arguments))
    events.append(Done(c))
    return events
