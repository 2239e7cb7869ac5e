"""What the observer hooks are told: one neutral record per attempt and per call.

Records are built only when some plugin implements an observer hook (``Registry.observed``),
so with none installed a call costs what it did before the hooks existed."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from llmplug._vocab._call import Call
from llmplug._vocab._errors import LLMError
from llmplug._vocab._types import Completion, ToolCall, Usage

from ._log import log_event

if TYPE_CHECKING:
    from ._pipeline import Pipeline
    from ._registry import Registry

__all__ = [
    "AttemptInfo",
    "CallInfo",
    "RunInfo",
    "StreamWatch",
    "ToolInfo",
    "call_id_of",
    "observed_complete",
    "observed_run",
    "retry_reason",
]

Status = Literal["ok", "error", "interrupted"]

# A call's id: a random prefix per process and a counter. Unique across the processes of a
# batch or a fleet (``id(call)`` was reused as soon as a call was freed), and a fraction of
# a microsecond to make (uuid4 costs ten times more); made only for observed calls.
_prefix = os.urandom(4).hex()
_counter = itertools.count(1)


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix, _counter = os.urandom(4).hex(), itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def call_id_of(call: Call) -> str:
    """The call's observer id, made the first time an observer needs it."""
    if call.call_id is None:
        call.call_id = f"{_prefix}-{next(_counter):x}"
    return call.call_id


class AttemptInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One HTTP attempt of a call, as it ended.

    ``status`` is ``"ok"`` (a reply), ``"error"`` (``error_type`` names the
    :class:`llmplug.LLMError` class, ``http_status`` the provider's status if there was one) or
    ``"interrupted"`` (cancelled, or the caller's deadline passed). ``retry_reason`` says why
    this attempt was made: None for a call's first, else the previous attempt's error (e.g.
    ``"429 RateLimitError"``). ``error_kind`` is the error's kind as its wire classified it
    (:data:`llmplug.ErrorKind`). ``key`` is the key's fingerprint, never the key. ``call_id``
    is the same for every attempt of one call and its :class:`CallInfo`, unique in the
    process and across processes: it links the attempts to their call.
    ``time_to_first_token_s`` is, for a stream, the seconds from the attempt's request going
    out (its key leased) to its first event (text, reasoning or a tool call's first piece);
    None when no event came or the call did not stream."""

    call_id: str
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
    error_kind: str | None = None
    time_to_first_token_s: float | None = None


class CallInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One call (all its attempts), as it ended: ``attempts`` counts the HTTP attempts made;
    ``status`` and ``error_type`` are the call's outcome, as the caller saw it; ``call_id``
    is its attempts' ``call_id``.

    ``call`` is the call as it was sent (messages, tools, ``params``, ``session_id``,
    ``base_url``; read it, never change it) and ``completion`` the whole answer (None when the
    call failed). For a stream, ``first_chunk_s`` and ``last_chunk_s`` are the seconds from the
    call's start to its first event and to its end (``Done``)."""

    call_id: str
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
    call: Call | None = None
    completion: Completion | None = None
    first_chunk_s: float | None = None
    last_chunk_s: float | None = None


class ToolInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call that ``llm_function`` or ``llm_chat`` ran, as it ended.

    ``call`` is the model's request (tool name, ``id``, ``arguments`` as the model wrote them);
    ``status`` is ``"ok"``, ``"error"`` (the tool failed: ``error_type`` names why, ``result``
    is the error text the model reads) or ``"interrupted"`` (cancelled). ``result`` is the text
    sent back to the model. ``trace_id`` and ``session_id`` are those of the decorated call."""

    call: ToolCall
    status: Status
    started: float
    duration_s: float
    result: str | None = None
    error_type: str | None = None
    description: str | None = None
    trace_id: str | None = None
    session_id: str | None = None


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A run of many calls about to start: ``kind`` ``"batch"`` for ``llmplug batch``.
    ``name`` names the run (the input file), ``llm`` is the interface or group that serves it,
    ``attributes`` what else is known (``max_in_flight``, ``wire``...)."""

    kind: str
    name: str
    llm: Any = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)


def retry_reason(error: LLMError | None) -> str | None:
    if error is None:
        return None
    name = type(error).__name__
    return f"{error.status} {name}" if error.status else name


def notify(registry: Registry, hook: str, info: AttemptInfo | CallInfo | ToolInfo) -> None:
    """Tell every observer; one that raises is logged and does not change the call."""
    try:
        getattr(registry.hot, hook)(info=info)
    except Exception as exc:
        _failed(hook, exc)


def _failed(hook: str, exc: Exception) -> None:
    log_event(
        logging.WARNING, "llm.observer_failed", hook=hook, error=f"{type(exc).__name__}: {exc}"
    )


def _call_info(
    pipe: Pipeline,
    call: Call,
    started: float,
    t0: float,
    completion: Completion | None,
    error: BaseException | None,
    chunks: tuple[float | None, float | None] = (None, None),
) -> CallInfo:
    status: Status = (
        "ok" if error is None else "error" if isinstance(error, LLMError) else "interrupted"
    )
    return CallInfo(
        call_id=call_id_of(call),
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
        call=call,
        completion=completion,
        first_chunk_s=chunks[0],
        last_chunk_s=chunks[1],
    )


def _start(call: Call) -> tuple[float, float]:
    started = time.time()
    call_id_of(call)
    call.started = started
    return started, time.perf_counter()


async def observed_complete(
    pipe: Pipeline, call: Call, run: Callable[[Call], object]
) -> Completion:
    started, t0 = _start(call)
    try:
        completion: Completion = await run(call)  # type: ignore[misc]
    except BaseException as exc:
        notify(pipe.registry, "observe_call", _call_info(pipe, call, started, t0, None, exc))
        raise
    notify(pipe.registry, "observe_call", _call_info(pipe, call, started, t0, completion, None))
    return completion


class StreamWatch:
    """What the observers are told of a streamed call, noted by the pipeline's own stream
    generator as it goes: a generator around it cost a frame and a resumption per event."""

    __slots__ = ("call", "completion", "error", "first", "last", "pipe", "started", "t0")

    def __init__(self, pipe: Pipeline, call: Call) -> None:
        self.pipe = pipe
        self.call = call
        self.started, self.t0 = _start(call)
        self.completion: Completion | None = None
        self.error: BaseException | None = None
        self.first: float | None = None
        self.last: float | None = None

    def first_event(self) -> None:
        """The call's first event is being handed to the caller."""
        if self.first is None:
            self.first = time.perf_counter() - self.t0

    def done(self, completion: Completion) -> None:
        """Its ``Done`` is being handed to the caller."""
        self.completion = completion
        self.last = time.perf_counter() - self.t0
        if self.first is None:
            self.first = self.last

    def failed(self, error: BaseException) -> None:
        """``error`` left the stream generator."""
        if self.completion is None:  # after Done, the caller's leaving early is no failure
            self.error = error

    def end(self) -> None:
        """The generator is finished: the observers are told how the call ended."""
        error = self.error
        if self.completion is None and error is None:
            error = GeneratorExit()  # the caller stopped reading before the end
        info = _call_info(
            self.pipe,
            self.call,
            self.started,
            self.t0,
            self.completion,
            error,
            (self.first, self.last),
        )
        notify(self.pipe.registry, "observe_call", info)


@contextlib.contextmanager
def observed_run(registry: Registry, info: RunInfo) -> Iterator[None]:
    """Around a run of many calls: the context managers ``observe_run`` answers, entered in
    turn; a plugin that fails to give or enter one is logged and left out."""
    if not registry.observed:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            managers = registry.hook.observe_run(info=info)
        except Exception as exc:
            _failed("observe_run", exc)
            managers = []
        for manager in managers:
            try:
                stack.enter_context(manager)
            except Exception as exc:
                _failed("observe_run", exc)
        yield
