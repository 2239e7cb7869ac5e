"""A stream's bytes as events: framing (SSE or NDJSON) fed to the wire's parser, and the errors
a broken stream raises. (The events a whole, unstreamed answer stands for are
``llmplug.wire.events_of``.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from llmplug._vocab._errors import APIConnectionError, APITimeoutError, LLMError, StreamError
from llmplug._vocab._types import Completion, StreamEvent
from llmplug._wire._ndjson import NDJSONDecoder
from llmplug._wire._sse import SSEDecoder, SSEEvent, SSETooLarge

if TYPE_CHECKING:
    from llmplug._limits._keys import KeyLease
    from llmplug._vocab._call import Call
    from llmplug._wire._parser import StreamParser

    from ._pipeline import Pipeline

__all__ = ["broken", "partial", "stream_events"]


def broken(
    p: Pipeline, exc: LLMError, parser: StreamParser | None, lease: KeyLease | None
) -> StreamError:
    """The error of a stream that failed after output reached the caller: never retried, since
    a retry would show that output twice; it carries what had arrived."""
    return StreamError(
        f"the stream broke after output reached the caller: {exc.message}",
        partial=partial(parser),
        provider=p.provider,
        model=p.model,
        status=exc.status,
        key_id=lease.fingerprint if lease else None,
        plugin=exc.plugin,
    )


async def stream_events(
    p: Pipeline, response: Any, parser: StreamParser, lease: KeyLease, framing: str, call: Call
) -> AsyncGenerator[list[StreamEvent], None]:
    """The events of a streamed response, a list per chunk read (never empty), its transport
    and parser errors made llmplug's.

    A list per read, not an event per ``anext``: the caller wraps each ``anext`` in its deadline
    scope, and a read that brings a whole reply (a fast local model, a proxy that buffers)
    would otherwise pay that and a generator round trip for each of its events."""
    # Framing is chosen once per response; per chunk it is one decoder call.
    decoder = NDJSONDecoder() if framing == "ndjson" else SSEDecoder()
    chunks = response.aiter_bytes()
    try:
        lost: LLMError | None = None
        try:
            async for chunk in chunks:
                batch, failure = _parse(decoder.feed(chunk), parser)
                if batch:
                    yield batch
                if failure is not None:
                    # After the events before it: as when each event went out on its own, a
                    # failure that comes after output is a broken stream, never a retry.
                    raise failure
                if parser.done:
                    await _drain(chunks)
                    return
            batch, failure = _parse(decoder.close(), parser)
            if batch:
                yield batch
            if failure is not None:
                raise failure
        except SSETooLarge as exc:
            raise StreamError(
                str(exc),
                partial=partial(parser),
                provider=p.provider,
                model=p.model,
                key_id=lease.fingerprint,
            ) from None
        except p.transport.timeout_error as exc:
            lost = p._connection_error(APITimeoutError, exc, lease)
        except p.transport.request_error as exc:
            lost = p._connection_error(APIConnectionError, exc, lease)
        except Exception as exc:  # the parser's, the only other code that runs here
            p._parser_failed(exc, call, "parsing a stream event")
        # A parser that said the answer is complete (``complete``: its finish reason came) has a
        # whole answer whatever follows: the body may end there, or break while we read on for a
        # trailing usage chunk.
        complete = parser.done or getattr(parser, "complete", False)
        if lost is not None and not complete:
            # Raised out of the except, so the client's exception, which holds the request (the
            # URL with any ?key=, the key's header), is not its __context__ (see Pipeline._send).
            raise lost
        if not complete:
            raise StreamError(
                "the stream ended before its end marker (truncated)",
                partial=partial(parser),
                provider=p.provider,
                model=p.model,
                key_id=lease.fingerprint,
            )
    finally:
        # Closed here, on this loop, however the stream ends (its end, an error, the caller
        # leaving): httpx2's generators close the ones inside them, in order. Left open, they
        # were closed by asyncio at the loop's end, all at once (an inner one while the outer
        # one was closing it: "already executing"), or by the garbage collector on any thread.
        # A close that fails leaves the response to Pipeline._close, as before.
        with contextlib.suppress(Exception):
            await chunks.aclose()


def _parse(
    frames: list[SSEEvent], parser: StreamParser
) -> tuple[list[StreamEvent], Exception | None]:
    """What the parser makes of one read's frames, up to its end marker, and the exception it
    raised, if any, with the events it gave before it."""
    out: list[StreamEvent] = []
    try:
        for frame in frames:
            out += parser.feed(frame)
            if parser.done:
                break
    except Exception as exc:
        return out, exc
    return out, None


#: After a stream's end marker, how much more body and time we spend to reach the end of the
#: HTTP body: a connection read to its end goes back to the pool (no new TCP+TLS handshake for
#: the next call); one that is not is closed.
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 0.25


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    import asyncio  # on use, not with llmplug (tests/core/test_import.py)

    seen = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for chunk in chunks:
                seen += len(chunk)
                if seen > _DRAIN_BYTES:
                    return
    except Exception:  # the answer is complete: the connection is just not reused
        return


def partial(parser: StreamParser | None) -> Completion | None:
    """A failed stream's partial output, if the parser can still give it."""
    if parser is None:
        return None
    try:
        return parser.result()
    except Exception:  # the stream failed already; that error is the one to report
        return None
