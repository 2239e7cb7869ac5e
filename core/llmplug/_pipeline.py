"""One call, end to end: select_key -> acquire_rate -> build_request -> send -> parse_stream,
with the retry policy around it. Every lease is released in ``finally``, cancellation included."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from ._call import Call
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    ConfigError,
    LLMError,
    RateLimitError,
    StreamError,
    status_error_class,
)
from ._keys import APIKeyPool, KeyLease
from ._log import log_event
from ._parser import StreamParser
from ._registry import Registry
from ._retry import (
    MAX_SERVER_DELAY,
    backoff_delay,
    is_retryable_status,
    parse_error_body,
    server_delay,
)
from ._sse import SSEDecoder, SSETooLarge
from ._transport import Transport
from ._types import Completion, Done, ReasoningDelta, StreamEvent, TextDelta, ToolCallDelta
from ._usage import UsageTracker

__all__ = ["Pipeline"]

#: How long a key that the server refused (401/403) or whose quota is gone stays out of rotation.
DISABLE_SECONDS = 3600.0


class Pipeline:
    """The attempt loop of one interface."""

    __slots__ = (
        "key_wait_timeout",
        "limiter",
        "max_retries",
        "model",
        "pool",
        "provider",
        "registry",
        "retry_delay",
        "timeout",
        "transport",
        "usage",
    )

    def __init__(
        self,
        *,
        registry: Registry,
        pool: APIKeyPool,
        limiter: object,
        transport: Transport,
        provider: str,
        model: str,
        max_retries: int,
        retry_delay: float,
        key_wait_timeout: float,
        usage: UsageTracker,
        timeout: Any = None,
    ) -> None:
        self.usage = usage
        self.registry = registry
        self.pool = pool
        self.limiter = limiter
        self.transport = transport
        self.provider = provider
        self.model = model
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.key_wait_timeout = key_wait_timeout
        self.timeout = timeout

    # -- the steps -----------------------------------------------------------------------------

    async def _lease(self, call: Call) -> KeyLease:
        wait = self.pool.next_ready_in()
        if wait > 0:
            if wait > self.key_wait_timeout:
                raise RateLimitError(
                    f"every key is cooling down, the first for {wait:.1f}s more "
                    f"(more than key_wait_timeout={self.key_wait_timeout:g}s): "
                    f"{self.pool.status()}",
                    provider=self.provider,
                    model=self.model,
                )
            log_event(logging.INFO, "llm.keys_cooling", provider=self.provider, wait_s=wait)
            await asyncio.sleep(wait)
        lease = self.registry.hook.select_key(
            strategy=self.pool.strategy, pool=self.pool, call=call
        )
        if lease is None:
            raise ConfigError(f"no plugin provides the key strategy {self.pool.strategy!r}")
        return lease  # type: ignore[no-any-return]

    async def _acquire(self) -> None:
        waiter = self.registry.hook.acquire_rate(limiter=self.limiter, cost=1.0)
        if waiter is None:
            kind = getattr(self.limiter, "kind", type(self.limiter).__name__)
            raise ConfigError(f"no plugin provides the rate limiter {kind!r}")
        await waiter

    async def _send(self, call: Call, lease: KeyLease) -> Any:
        request = self.registry.hook.build_request(wire=call.wire, call=call, key=lease.key)
        if request is None:
            raise ConfigError(f"no plugin provides the wire format {call.wire!r}")
        try:
            return await self.transport.send(request, self.timeout)
        except self.transport.timeout_error as exc:
            raise self._connection_error(APITimeoutError, exc, lease) from None
        except self.transport.request_error as exc:
            raise self._connection_error(APIConnectionError, exc, lease) from None

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
        finally:
            await self._close(response)

    async def _close(self, response: Any) -> None:
        try:
            await response.aclose()
        finally:
            self.transport.response_closed()

    def _connection_error(
        self, cls: type[LLMError], exc: BaseException, lease: KeyLease
    ) -> LLMError:
        what = "timed out" if cls is APITimeoutError else "failed"
        text = str(exc) or type(exc).__name__
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
            err.message,
            provider=self.provider,
            model=self.model,
            status=status,
            code=err.code,
            type=err.type,
            key_id=lease.fingerprint,
            headers=dict(response.headers),
        )

    # -- the policy ----------------------------------------------------------------------------

    def _plan(self, error: LLMError, lease: KeyLease, retries: int) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` if there is none."""
        error.attempts = retries + 1
        left = retries < self.max_retries
        headers = error.headers or {}
        status = error.status
        if isinstance(error, APIStatusError) and status is not None:
            if status in (401, 403) or status == 402 or _quota_gone(error):
                self.pool.cool_down(lease.index, DISABLE_SECONDS, f"HTTP {status}: {error.message}")
                if left and self.pool.healthy():
                    return 0.0
                raise error
            if not is_retryable_status(status, headers):
                raise error
            told = server_delay(headers)
            if status == 429:
                cool = (
                    told
                    if told is not None and told > 0
                    else backoff_delay(retries, self.retry_delay)
                )
                self.pool.cool_down(lease.index, cool, "rate limited (429)")
                if not left:
                    raise error
                if not self.pool.healthy() and self.pool.next_ready_in() > min(
                    self.key_wait_timeout, MAX_SERVER_DELAY
                ):
                    raise error  # the server's own 429, not a "keys cooling" error of ours
                return 0.0  # another key now, or wait in _lease for this one to come back
            if not left:
                raise error
            if told is not None and told > 0:
                if told > MAX_SERVER_DELAY:
                    raise error
                return told
            return backoff_delay(retries, self.retry_delay)
        if isinstance(error, StreamError):
            if left and status is not None and is_retryable_status(status, headers):
                return backoff_delay(retries, self.retry_delay)
            raise error
        if isinstance(error, APIConnectionError) and left:
            return backoff_delay(retries, self.retry_delay)
        raise error

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
        )

    def _log_success(self, c: Completion, lease: KeyLease, call: Call, t0: float) -> None:
        self.usage.add(c.usage)
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
        )

    # -- the two ways to call ------------------------------------------------------------------

    async def complete(self, call: Call) -> Completion:
        retries = 0
        while True:
            lease = await self._lease(call)
            t0 = time.perf_counter()
            try:
                await self._acquire()
                response = await self._send(call, lease)
                body = await self._read(response, lease)
                if response.status_code >= 400:
                    raise self._status_error(response, body, lease)
                completion = self._parser(call).parse_body(body)
                self._log_success(completion, lease, call, t0)
                return completion
            except LLMError as exc:
                error = exc
                lease.release(error=True)
                self._log_failure(error, lease, call, t0)
            finally:
                lease.release()
            delay = self._plan(error, lease, retries)
            retries += 1
            call.attempt = retries
            if delay > 0:
                await asyncio.sleep(delay)

    async def stream(self, call: Call) -> AsyncGenerator[StreamEvent, None]:
        retries = 0
        while True:
            lease = await self._lease(call)
            t0 = time.perf_counter()
            emitted = False
            parser: StreamParser | None = None
            try:
                await self._acquire()
                response = await self._send(call, lease)
                if response.status_code >= 400:
                    raise self._status_error(response, await self._read(response, lease), lease)
                parser = self._parser(call)
                ctype = response.headers.get("content-type", "")
                if ctype.startswith("application/json"):
                    # The server ignored "stream": answer with the same events a stream gives.
                    completion = parser.parse_body(await self._read(response, lease))
                    self._log_success(completion, lease, call, t0)
                    for event in _events_of(completion):
                        emitted = True
                        yield event
                    return
                events = self._events(response, parser, lease)
                try:
                    async for event in events:
                        emitted = True
                        yield event
                finally:
                    await events.aclose()
                    await self._close(response)
                completion = parser.result()
                self._log_success(completion, lease, call, t0)
                yield Done(completion)
                return
            except LLMError as exc:
                lease.release(error=True)
                self._log_failure(exc, lease, call, t0)
                if emitted:
                    if isinstance(exc, StreamError):
                        raise
                    partial = parser.result() if parser is not None else None
                    raise StreamError(
                        f"the stream broke after output reached the caller: {exc.message}",
                        partial=partial,
                        provider=self.provider,
                        model=self.model,
                        status=exc.status,
                        key_id=lease.fingerprint,
                    ) from exc
                error = exc
            finally:
                lease.release()
            delay = self._plan(error, lease, retries)
            retries += 1
            call.attempt = retries
            if delay > 0:
                await asyncio.sleep(delay)

    async def _events(
        self, response: Any, parser: StreamParser, lease: KeyLease
    ) -> AsyncGenerator[StreamEvent, None]:
        decoder = SSEDecoder()
        try:
            async for chunk in response.aiter_bytes():
                for sse in decoder.feed(chunk):
                    for event in parser.feed(sse):
                        yield event
                    if parser.done:
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


def _quota_gone(error: LLMError) -> bool:
    return "insufficient_quota" in (str(error.code), str(error.type))


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
