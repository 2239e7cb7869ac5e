"""Running a batch: read requests one line at a time, keep at most ``max_in_flight`` calls
going (the interface's limiter paces them), write each answer as it finishes."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from llmplug._vocab._errors import LLMError
from llmplug._vocab._types import Completion, Usage

from ._batch_lines import (
    BadLine,
    Request,
    error_line,
    error_of,
    json_body,
    ok_line,
    parse_request,
)

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

    from ._batch_output import Output

__all__ = ["BatchRun", "Stats"]

_encode = msgspec.json.Encoder().encode


class Stats:
    """Counts the display and the summary read: outcomes, tokens, cost, and per-second
    buckets of the last minute for the request and token rates."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.ok = 0
        self.failed = 0
        self.skipped = 0  # already in the output
        self.errors: collections.Counter[str] = collections.Counter()
        self.usage = Usage()
        self.cost: float | None = None
        self.unpriced = 0  # answers with usage but no cost (a group member without pricing)
        self.hits = 0  # answers a response cache gave (no request)
        self.saved = 0.0  # what those answers cost when they were paid for
        self.total: int | None = None  # requests in the input (counted in the background)
        self._seconds: collections.deque[list[int]] = collections.deque()

    def _tick(self, tokens: int) -> None:
        now = int(time.monotonic())
        if not self._seconds or self._seconds[-1][0] != now:
            self._seconds.append([now, 0, 0])
            while self._seconds[0][0] <= now - 60:
                self._seconds.popleft()
        bucket = self._seconds[-1]
        bucket[1] += 1
        bucket[2] += tokens

    def add_ok(self, c: Completion) -> None:
        self.ok += 1
        if c.cached:
            self.hits += 1
            self.saved += c.saved_cost or 0.0
        if c.usage is not None:
            self.usage = self.usage + c.usage
        if c.cost is not None:
            self.cost = (self.cost or 0.0) + c.cost
        elif c.usage is not None:
            self.unpriced += 1
        self._tick(c.usage.total_tokens if c.usage else 0)

    def add_failed(self, kind: str) -> None:
        self.failed += 1
        self.errors[kind] += 1
        self._tick(0)

    def per_minute(self) -> tuple[float, float]:
        """Requests and tokens per minute over the last minute (or the run, if shorter)."""
        now = time.monotonic()
        span = min(60.0, max(1.0, now - self.started))
        cutoff = int(now) - 60
        req = sum(b[1] for b in self._seconds if b[0] > cutoff)
        tok = sum(b[2] for b in self._seconds if b[0] > cutoff)
        return req * 60 / span, tok * 60 / span

    @property
    def finished(self) -> int:
        return self.ok + self.failed

    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.finished - self.skipped)

    def eta(self) -> float | None:
        left, (rpm, _) = self.remaining(), self.per_minute()
        if left is None or rpm <= 0:
            return None
        return left / rpm * 60


class BatchRun:
    """``wire`` is the one the input's lines must fit; ``raw_bodies`` False (a group whose
    members speak several wires) writes every answer as a Chat Completions body made from the
    Completion, so the output's bodies have one shape whichever member answered."""

    def __init__(
        self,
        llm: LLMInterface | ModelGroup,
        lines: Iterator[bytes],
        out: Output,
        done: set[str],
        *,
        wire: str,
        raw_bodies: bool = True,
        max_in_flight: int,
        shard: tuple[int, int] = (0, 1),
        limit: int | None = None,
    ) -> None:
        self.llm = llm
        self.wire = wire
        self.raw_bodies = raw_bodies
        self.lines = lines
        self.out = out
        self.done = done
        self.max_in_flight = max_in_flight
        self.shard = shard
        self.limit = limit
        self.stats = Stats()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.cancelled = False
        #: Why the output could not be written (the run then stops at once), or None.
        self.write_error: OSError | None = None
        #: A request's task that ended in an exception of its own (a bug: the run stops).
        self.crash: BaseException | None = None
        self._slot = asyncio.Event()

    def stop(self) -> None:
        """Take no new request; the ones in flight finish."""
        self.stopping = True
        self._slot.set()

    def cancel(self) -> None:
        """Cancel the calls in flight too: their requests stay undone, for the next run."""
        self.stop()
        self.cancelled = True
        for task in self.tasks:
            task.cancel()

    async def run(self) -> None:
        k, n = self.shard
        wire = self.wire
        started = 0
        for number, line in enumerate(self.lines, 1):
            if number % 1024 == 0:
                await asyncio.sleep(0)  # a long stretch of skipped lines must not starve the loop
            if self.stopping or (self.limit is not None and started >= self.limit):
                break
            if n > 1 and (number - 1) % n != k:
                continue
            if not line.strip():
                continue
            try:
                request = parse_request(line, number, wire)
            except BadLine as bad:
                if bad.custom_id in self.done:
                    self.stats.skipped += 1
                else:
                    self._write(error_line(bad.custom_id, bad.code, bad.message))
                    self.stats.add_failed(bad.code)
                continue
            if request.custom_id in self.done:
                self.stats.skipped += 1
                continue
            while len(self.tasks) >= self.max_in_flight and not self.stopping:
                self._slot.clear()
                await self._slot.wait()
            if self.stopping:
                break
            started += 1
            task = asyncio.create_task(self._one(request))
            self.tasks.add(task)
            task.add_done_callback(self._finished)
        while self.tasks:
            await asyncio.wait(set(self.tasks))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self._slot.set()
        # Taken here, so asyncio never prints it as "exception was never retrieved": the run
        # reports it as one line and a non-zero exit instead.
        if not task.cancelled() and (exc := task.exception()) is not None and self.crash is None:
            self.crash = exc
            self.cancel()

    async def _one(self, r: Request) -> None:
        try:
            c = await self.llm.chat(r.messages, r.tools, **r.params)
        except LLMError as exc:
            line = error_of(r.custom_id, exc)
            self.stats.add_failed(type(exc).__name__)
        except Exception as exc:  # a plugin's bug is this request's failure, not the run's
            line = error_line(r.custom_id, type(exc).__name__, str(exc) or repr(exc))
            self.stats.add_failed(type(exc).__name__)
        else:
            body = _body(c, self.raw_bodies)
            line = ok_line(r.custom_id, body, c.request_id)
            self.stats.add_ok(c)
        self._write(line)

    def _write(self, line: bytes) -> None:
        if self.write_error is not None:
            return
        try:
            self.out.write(line)
        except OSError as exc:  # a full disk, a closed pipe: nothing more can be kept
            self.write_error = exc
            self.cancel()


def _body(c: Completion, raw: bool = True) -> bytes:
    """The provider's JSON on one line; a wire plugin that keeps no body, or keeps one that is
    not JSON (or, with ``raw`` False, any answer), gets a Chat Completions body made from the
    Completion."""
    if raw and isinstance(c.raw, bytes | bytearray):
        body = json_body(bytes(c.raw))
        if body is not None:
            return body
    message: dict[str, Any] = {"role": "assistant", "content": c.text or None}
    if c.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in c.tool_calls
        ]
    u = c.usage or Usage()
    return _encode(
        {
            "object": "chat.completion",
            "model": c.model,
            "choices": [{"index": 0, "message": message, "finish_reason": c.finish_reason}],
            "usage": {
                "prompt_tokens": u.input_tokens,
                "completion_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
            },
        }
    )
