"""One call, end to end: select_key -> acquire_rate -> build_request -> send -> parse_stream,
with the retry policy around it. Every lease is released in ``finally``, cancellation included."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, NoReturn

from llmplug._limits._estimate import estimate_call_tokens
from llmplug._limits._keys import APIKeyPool, KeyLease
from llmplug._vocab._call import Call, merge_headers
from llmplug._vocab._classify import ERROR_KINDS, ErrorInfo, ErrorKind, classify_openai
from llmplug._vocab._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    InternalServerError,
    LLMError,
    NoKeyAvailableError,
    PluginError,
    RateLimitError,
    StreamError,
    status_error_class,
)
from llmplug._vocab._numbers import seconds
from llmplug._vocab._pricing import Pricing
from llmplug._vocab._ratelimits import RateLimits, openai_rate_limits
from llmplug._vocab._retry import parse_error_body
from llmplug._vocab._types import Completion, Done, StreamEvent, events_of
from llmplug._vocab._usage import UsageTracker
from llmplug._wire._parser import FRAMINGS, StreamParser

from ._attempt import Attempt, give_back
from ._blame import answering_plugin, plugin_error, raising_plugin
from ._deadline import Deadline
from ._log import log_event
from ._observe import StreamWatch, observed_complete
from ._policy import RetryPolicy
from ._registry import Registry
from ._stream_events import broken, stream_events

if TYPE_CHECKING:
    from ._transport import Transport

# asyncio is imported where it is used, once per call: ``import llmplug`` stays light
# (tests/core/test_import.py).

__all__ = ["Pipeline"]

_KIND_CLASS: dict[ErrorKind, type[APIStatusError]] = {
    "auth": AuthenticationError,
    "quota": RateLimitError,
    "rate_limit": RateLimitError,
    "server": InternalServerError,
}


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
        "url_query",
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
        url_query: str = "",
    ) -> None:
        self.registry = registry
        #: The interface's base_url query, appended to every request's URL (see _send).
        self.url_query = url_query
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
            import asyncio

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
                    try:
                        lease = self.registry.hot.select_key(
                            strategy=pool.strategy, pool=pool, call=call
                        )
                    except Exception as exc:
                        plugin = raising_plugin(self.registry, "select_key", exc)
                        self._fail(exc, plugin, "choosing a key")
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
        try:
            waiter = self.registry.hot.acquire_rate(limiter=limiter, cost=cost)
        except Exception as exc:
            plugin = raising_plugin(self.registry, "acquire_rate", exc)
            self._fail(exc, plugin, "asking a rate limiter")
        if waiter is None:
            kind = getattr(limiter, "kind", type(limiter).__name__)
            raise ConfigError(f"no plugin provides the rate limiter {kind!r}")
        await waiter

    def observe(self, limits: RateLimits | None, lease: KeyLease) -> None:
        """What a successful reply's rate-limit headers said: a key with nothing left rests
        until its reset; with one key, the local budgets also believe the server when it says
        less."""
        if limits is None:
            return
        if limits.used_up:
            reset = limits.reset
            if reset:
                self.pool.cool_down(lease.index, reset, "rate limit used up (rate-limit headers)")
        if len(self.pool) == 1:
            for limiter, remaining in (
                (self.limiter, limits.remaining_requests),
                (self.token_limiter, limits.remaining_tokens),
            ):
                tighten = getattr(limiter, "tighten", None)
                if remaining is not None and callable(tighten):
                    tighten(remaining)

    def _limits(self, parser: StreamParser, headers: Any, call: Call) -> RateLimits | None:
        """The reply's rate limits, read by the wire's parser when it offers ``rate_limits``
        (its answer is final, None included), else as OpenAI's ``x-ratelimit-*``."""
        reader = getattr(parser, "rate_limits", None)
        if reader is None:
            return openai_rate_limits(headers)
        try:
            return reader(headers)  # type: ignore[no-any-return]
        except Exception as exc:
            self._parser_failed(exc, call, "reading rate-limit headers")

    def _fail(self, exc: Exception, plugin: str | None, doing: str) -> NoReturn:
        """Raise what the user gets for a plugin's exception (see ``_blame.plugin_error``)."""
        err = plugin_error(exc, plugin, doing, self.provider, self.model)
        if err is exc:
            raise exc
        raise err from exc

    def _parser_failed(self, exc: Exception, call: Call, doing: str) -> NoReturn:
        plugin = answering_plugin(self.registry, "parse_stream", {"wire": call.wire, "call": call})
        self._fail(exc, plugin, doing)

    async def _send(self, call: Call, lease: KeyLease) -> Any:
        try:
            request = self.registry.hot.build_request(wire=call.wire, call=call, key=lease.key)
        except Exception as exc:
            self._fail(
                exc, raising_plugin(self.registry, "build_request", exc), "building a request"
            )
        if request is None:
            raise ConfigError(f"no plugin provides the wire format {call.wire!r}")
        if call.headers:
            # The interface's configured headers win over the plugin's: applied here, every
            # wire honours them without merging them itself.
            request.headers = merge_headers(request.headers, call.headers)
        if self.url_query:
            # After the wire's path, as every wire wants it: plugins build on Call.base_url
            # (which has no query), and one that adds a query of its own keeps it.
            sep = "&" if "?" in request.url else "?"
            request.url = f"{request.url}{sep}{self.url_query}"
        try:
            response = await self.transport.send(request, call.timeout or self.timeout)
        except self.transport.timeout_error as exc:
            error = self._connection_error(APITimeoutError, exc, lease)
        except self.transport.request_error as exc:
            error = self._connection_error(APIConnectionError, exc, lease)
        else:
            return response
        # Raised here, not in the except: even suppressed ("from None"), the client's exception
        # would stay as __context__, and with it its request (the URL with any ?key=, the
        # headers with the API key) for anything that walks the chain (an error tracker).
        raise error

    def _parser(self, call: Call) -> StreamParser:
        """The attempt's parser, asked for before anything is sent: a wire with a request
        builder but no parser never sends a (billable) request."""
        try:
            parser = self.registry.hot.parse_stream(wire=call.wire, call=call)
        except Exception as exc:
            self._fail(exc, raising_plugin(self.registry, "parse_stream", exc), "making a parser")
        if parser is None:
            raise ConfigError(
                f"no plugin parses the wire format {call.wire!r}; nothing was sent",
                provider=self.provider,
                model=self.model,
            )
        return parser  # type: ignore[no-any-return]

    def _framing(self, parser: StreamParser, call: Call) -> str:
        framing: str = getattr(parser, "framing", "sse")
        if framing not in FRAMINGS:
            plugin = answering_plugin(
                self.registry, "parse_stream", {"wire": call.wire, "call": call}
            )
            raise ConfigError(
                f"the parser of the wire format {call.wire!r} declares framing={framing!r}; "
                f"expected one of {', '.join(FRAMINGS)}",
                provider=self.provider,
                model=self.model,
                plugin=plugin,
            )
        return framing

    def _parse_body(self, parser: StreamParser, body: bytes, call: Call) -> Completion:
        try:
            return parser.parse_body(body)
        except Exception as exc:
            self._parser_failed(exc, call, "parsing a response body")

    def _result(self, parser: StreamParser, call: Call) -> Completion:
        try:
            return parser.result()
        except Exception as exc:
            self._parser_failed(exc, call, "putting a streamed reply together")

    async def _read(self, response: Any, lease: KeyLease) -> bytes:
        """The whole body, with the key (should the server echo it) already replaced, so no
        excerpt cut from it later can hold a piece of it."""
        try:
            return lease.scrub(await response.aread())
        except self.transport.timeout_error as exc:
            error = self._connection_error(APITimeoutError, exc, lease)
        except self.transport.request_error as exc:
            error = self._connection_error(APIConnectionError, exc, lease)
        raise error  # out of the except, as in _send

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

    def _classify(
        self, parser: StreamParser, status: int, headers: Any, body: bytes, call: Call
    ) -> ErrorInfo:
        """The error response as the wire's parser classifies it (``classify_error``; its
        None, or no such method, leaves it to :func:`classify_openai`)."""
        reader = getattr(parser, "classify_error", None)
        info = None
        if reader is not None:
            try:
                info = reader(status, headers, body)
            except Exception as exc:
                self._parser_failed(exc, call, "classifying an error response")
            if info is not None and (
                not isinstance(info, ErrorInfo) or info.kind not in ERROR_KINDS
            ):
                plugin = answering_plugin(
                    self.registry, "parse_stream", {"wire": call.wire, "call": call}
                )
                raise PluginError(
                    f"classify_error returned {info!r}; expected an llmplug.ErrorInfo whose kind "
                    f"is one of {', '.join(ERROR_KINDS)}, or None",
                    provider=self.provider,
                    model=self.model,
                    plugin=plugin,
                )
        return info if info is not None else classify_openai(status, headers, body)

    def _status_error(
        self, response: Any, body: bytes, lease: KeyLease, parser: StreamParser, call: Call
    ) -> APIStatusError:
        status: int = response.status_code
        info = self._classify(parser, status, response.headers, body, call)
        message = info.message
        if not message.strip():
            message = parse_error_body(
                body, status, getattr(response, "reason_phrase", "") or ""
            ).message
        cls = status_error_class(status)
        if cls in (APIStatusError, BadRequestError):
            # A kind the status does not tell (Gemini's 400 for a revoked key) picks the class.
            cls = _KIND_CLASS.get(info.kind, cls)
        error = cls(
            message,
            provider=self.provider,
            model=self.model,
            status=status,
            code=info.code,
            type=info.type,
            key_id=lease.fingerprint,
            headers=dict(response.headers),
            kind=info.kind,
            # A plugin's number is a server's number: made safe as the core's own are.
            retry_after=seconds(info.retry_after),
        )
        # Read by the wire's own parser, as for a reply: a 429's cooldown is its reset.
        error.rate_limits = self._limits(parser, response.headers, call)
        return error

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
        if self.registry.observed:
            return await observed_complete(self, call, self._complete)
        return await self._complete(call)

    async def _complete(self, call: Call) -> Completion:
        import asyncio

        total = call.total_timeout or self.total_timeout
        deadline = None if total is None else asyncio.get_running_loop().time() + total
        retries = 0
        error: LLMError | None = None
        while True:
            attempt = Attempt(self, call, error)
            try:
                async with asyncio.timeout_at(deadline):
                    parser = self._parser(call)
                    lease = await self._admit(attempt)
                    response = await self._send(call, lease)
                    try:
                        body = await self._read(response, lease)
                    finally:
                        await self._close(response)
                if response.status_code >= 400:
                    raise self._status_error(response, body, lease, parser, call)
                completion = self._parse_body(parser, body, call)
                return attempt.ok(
                    completion, response.headers, self._limits(parser, response.headers, call)
                )
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
        import asyncio

        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.sleep(delay)
        except TimeoutError:
            if total is None:
                raise
            raise self._total_timeout_error(total) from last

    async def stream(self, call: Call) -> AsyncGenerator[StreamEvent, None]:
        import asyncio

        # Observed here, not by a generator around this one: that cost a frame per event.
        watch = StreamWatch(self, call) if self.registry.observed else None
        try:
            total = call.total_timeout or self.total_timeout
            deadline = None if total is None else asyncio.get_running_loop().time() + total
            scope = Deadline(deadline)
            retries = 0
            error: LLMError | None = None
            while True:
                emitted = False
                parser: StreamParser | None = None
                response: Any = None
                attempt = Attempt(self, call, error)
                try:
                    # A deadline scope around each await only, never across a yield: the
                    # caller's own code between events must not be cancelled by our timeout.
                    with scope:
                        parser = self._parser(call)
                        lease = await self._admit(attempt)
                        response = await self._send(call, lease)
                        if response.status_code >= 400:
                            got = await self._read(response, lease)
                            raise self._status_error(response, got, lease, parser, call)
                        framing = self._framing(parser, call)
                        whole = framing == "json" or response.headers.get(
                            "content-type", ""
                        ).startswith("application/json")
                        body = await self._read(response, lease) if whole else None
                    if body is not None:
                        # A whole body (the wire's framing, or a server that ignored
                        # "stream"): answer with the same events a stream gives.
                        attempt.first_event()  # every token came at once, with the body
                        completion = attempt.ok(
                            self._parse_body(parser, body, call),
                            response.headers,
                            self._limits(parser, response.headers, call),
                        )
                        for event in events_of(completion):
                            emitted = True
                            if watch is not None:
                                # As each event is handed over: a body that fails to parse
                                # handed nothing.
                                watch.first_event()
                                if isinstance(event, Done):
                                    watch.done(completion)
                            yield event
                        return
                    events = stream_events(self, response, parser, lease, framing, call)
                    try:
                        while True:
                            with scope:
                                batch = await anext(events, None)
                            if batch is None:
                                break
                            if batch and not emitted:
                                attempt.first_event()
                                if watch is not None:
                                    watch.first_event()
                            for event in batch:
                                emitted = True
                                yield event
                    finally:
                        await events.aclose()
                    completion = attempt.ok(
                        self._result(parser, call),
                        response.headers,
                        self._limits(parser, response.headers, call),
                    )
                    if watch is not None:
                        watch.done(completion)
                    yield Done(completion)
                    return
                except TimeoutError:
                    if total is None:
                        raise
                    timed_out = self._total_timeout_error(total)
                    attempt.failed(timed_out)
                    if not emitted:
                        raise timed_out from error
                    raise broken(self, timed_out, parser, attempt.lease) from timed_out
                except LLMError as exc:
                    error = exc
                    attempt.failed(error)
                    if emitted:
                        if isinstance(error, StreamError):
                            raise
                        raise broken(self, error, parser, attempt.lease) from error
                finally:
                    # The books first, with no await before them: whatever interrupts the
                    # cleanup below (a second cancellation, a loop that is ending) cannot leak
                    # the lease.
                    attempt.end()
                    scope.close()  # its timer leaves the loop; the next attempt arms it again
                    if response is not None:
                        await self._close(response)
                delay = self._retry_delay(error, attempt.lease, retries, call)
                retries += 1
                call.attempt = retries
                await self._backoff(delay, deadline, total, error)
        except BaseException as exc:
            if watch is not None:
                watch.failed(exc)
            raise
        finally:
            if watch is not None:
                watch.end()
