"""One call, end to end: select_key -> acquire_rate -> build_request -> send -> parse_stream,
with the retry policy around it. Every lease is released in ``finally``, cancellation included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from ._attempt import Attempt, give_back
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
from ._pricing import Pricing
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
        "pricing",
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
        pricing: Pricing | None = None,
    ) -> None:
        self.registry = registry
        self.pricing = pricing
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

    async def _key_turn(self, call: Call) -> None:
        """Return when some key is healthy; wait for one to come back while none is, or raise
        :class:`NoKeyAvailableError` when none will within ``key_wait_timeout``."""
        limit = self.policy.key_wait_timeout
        while (wait := self.pool.wait_turn(limit)) > 0:
            if wait > limit:
                every = (
                    "every key is disabled"
                    if wait == float("inf")
                    else (
                        f"every key is cooling down, the first for {wait:.1f}s more (more than "
                        f"key_wait_timeout={limit:g}s)"
                    )
                )
                raise NoKeyAvailableError(
                    f"{every}: {self.pool.describe()}",
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

    async def _admit(self, attempt: Attempt) -> KeyLease:
        """Wait for a key to be usable and for the limiter, then choose the key: the choice
        comes after the limiter's wait, so a key that cooled down or was refused while the
        request queued is not used."""
        call, pool = attempt.call, self.pool
        while True:
            await self._key_turn(call)
            await self._wait_for(self.limiter, 1.0)
            if self.token_limiter is not None:
                charge = float(estimate_call_tokens(call.messages, call.tools, call.params))
                await self._wait_for(self.token_limiter, charge)
                attempt.charged = charge
            with pool.lock:
                if pool.healthy():
                    lease = self.registry.hook.select_key(
                        strategy=pool.strategy, pool=pool, call=call
                    )
                    break
            # Every key went cooling while this request queued. Its turn goes back to the
            # limiter and it waits for a key again: held here instead, the requests admitted
            # meanwhile would all go out at once the moment a key returns.
            give_back(self.limiter, 1.0)
            attempt.give_back()
        if lease is None:
            raise ConfigError(f"no plugin provides the key strategy {pool.strategy!r}")
        attempt.lease = lease
        attempt.t0 = time.perf_counter()
        return lease  # type: ignore[no-any-return]

    async def _wait_for(self, limiter: object, cost: float) -> None:
        waiter = self.registry.hook.acquire_rate(limiter=limiter, cost=cost)
        if waiter is None:
            kind = getattr(limiter, "kind", type(limiter).__name__)
            raise ConfigError(f"no plugin provides the rate limiter {kind!r}")
        await waiter

    def observe(self, headers: Any, lease: KeyLease) -> None:
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
        """The whole body, with the key (should the server echo it) already replaced, so no
        excerpt cut from it later can hold a piece of it."""
        try:
            return lease.scrub(await response.aread())
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
        return cls(
            f"request {what}: {str(exc) or type(exc).__name__}",
            provider=self.provider,
            model=self.model,
            key_id=lease.fingerprint,
        )

    def _status_error(self, response: Any, body: bytes, lease: KeyLease) -> APIStatusError:
        status: int = response.status_code
        err = parse_error_body(body, status, getattr(response, "reason_phrase", "") or "")
        return status_error_class(status)(
            err.message,
            provider=self.provider,
            model=self.model,
            status=status,
            code=err.code,
            type=err.type,
            key_id=lease.fingerprint,
            headers=dict(response.headers),
        )

    def _total_timeout_error(self, total: float) -> APITimeoutError:
        """The call's deadline passed (raised ``from`` the last provider error, if any)."""
        return APITimeoutError(
            f"the call took longer than total_timeout={total:g}s",
            provider=self.provider,
            model=self.model,
        )

    def _retry_delay(
        self, error: LLMError, lease: KeyLease | None, retries: int, call: Call
    ) -> float:
        if lease is None:  # it never reached a key (no key, no limiter): nothing to retry
            raise error
        return self.policy.plan(error, lease, retries, call.max_retries)

    # -- the two ways to call ------------------------------------------------------------------

    async def complete(self, call: Call) -> Completion:
        total = call.total_timeout or self.total_timeout
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        retries = 0
        error: LLMError | None = None
        while True:
            attempt = Attempt(self, call)
            try:
                async with asyncio.timeout_at(deadline):
                    lease = await self._admit(attempt)
                    response = await self._send(call, lease)
                    try:
                        body = await self._read(response, lease)
                    finally:
                        await self._close(response)
                if response.status_code >= 400:
                    raise self._status_error(response, body, lease)
                return attempt.ok(self._parser(call).parse_body(body), response.headers)
            except TimeoutError:
                if total is None:
                    raise
                timed_out = self._total_timeout_error(total)
                attempt.failed(timed_out)
                raise timed_out from error
            except LLMError as exc:
                error = exc
                attempt.failed(error)
            finally:
                attempt.end()
            delay = self._retry_delay(error, attempt.lease, retries, call)
            retries += 1
            call.attempt = retries
            await self._backoff(delay, deadline, total, error)

    async def _backoff(
        self, delay: float, deadline: float | None, total: float | None, last: LLMError
    ) -> None:
        if delay <= 0:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.sleep(delay)
        except TimeoutError:
            if total is None:
                raise
            raise self._total_timeout_error(total) from last

    async def stream(self, call: Call) -> AsyncGenerator[StreamEvent, None]:
        total = call.total_timeout or self.total_timeout
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        retries = 0
        error: LLMError | None = None
        while True:
            emitted = False
            parser: StreamParser | None = None
            response: Any = None
            attempt = Attempt(self, call)
            try:
                # A deadline scope around each await only, never across a yield: the caller's
                # own code between events must not be cancelled by our timeout.
                async with asyncio.timeout_at(deadline):
                    lease = await self._admit(attempt)
                    response = await self._send(call, lease)
                    if response.status_code >= 400:
                        raise self._status_error(response, await self._read(response, lease), lease)
                    parser = self._parser(call)
                    whole = response.headers.get("content-type", "").startswith("application/json")
                    body = await self._read(response, lease) if whole else None
                if body is not None:
                    # The server ignored "stream": answer with the same events a stream gives.
                    completion = attempt.ok(parser.parse_body(body), response.headers)
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
                yield Done(attempt.ok(parser.result(), response.headers))
                return
            except TimeoutError:
                if total is None:
                    raise
                timed_out = self._total_timeout_error(total)
                attempt.failed(timed_out)
                if not emitted:
                    raise timed_out from error
                raise self._broken(timed_out, parser, attempt.lease) from timed_out
            except LLMError as exc:
                error = exc
                attempt.failed(error)
                if emitted:
                    if isinstance(error, StreamError):
                        raise
                    raise self._broken(error, parser, attempt.lease) from error
            finally:
                # The books first, with no await before them: whatever interrupts the cleanup
                # below (a second cancellation, a loop that is ending) cannot leak the lease.
                attempt.end()
                if response is not None:
                    await self._close(response)
            delay = self._retry_delay(error, attempt.lease, retries, call)
            retries += 1
            call.attempt = retries
            await self._backoff(delay, deadline, total, error)

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
