"""What ``@llm_chat`` returns: an agent that yields SimpleLLMFunc's ``(response,
updated_history)`` pairs when called, and llmplug's typed events from ``.events()``."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import AsyncGenerator, Callable, Generator
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import msgspec

from llmplug._vocab._types import Message, ReasoningDelta, StreamEvent, TextDelta

from ._events import AssistantReply, ChatEvent
from ._turns import TurnsDone

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface

__all__ = [
    "BlockingChatAgent",
    "ChatAgent",
    "ChatPairs",
    "HistoryList",
    "ReturnMode",
    "check_strict_signature",
]

T = TypeVar("T")

HistoryList: TypeAlias = list[dict[str, Any]]
"""A chat history: OpenAI Chat-style message dicts."""

ReturnMode: TypeAlias = Literal["text", "raw"]

ChatPair: TypeAlias = tuple[Any, HistoryList]
ChatStream: TypeAlias = AsyncGenerator[StreamEvent | ChatEvent, None]


class ChatAgent:
    """A chat agent made by ``@llm_chat``.

    ``agent(message, history)`` yields ``(response, updated_history)`` pairs, as SimpleLLMFunc
    does; ``agent.events(message, history)`` yields llmplug's typed events instead. Both take
    the decorated function's arguments, plus ``_template_params=`` and ``_llm_params=``."""

    __name__: str
    __qualname__: str
    __doc__: str | None
    __wrapped__: Callable[..., Any]

    def __init__(
        self,
        fn: Callable[..., Any],
        events: Callable[..., ChatStream],
        pairs: Callable[..., AsyncGenerator[ChatPair, None]],
    ) -> None:
        functools.update_wrapper(self, fn)
        self._events = events
        self._pairs = pairs

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncGenerator[ChatPair, None]:
        """``(response, updated_history)`` pairs: with ``return_mode="text"``, the reply's text
        chunks (``stream=True``) or each whole reply, then ``("", history)`` once the turn is
        done; with ``"raw"``, llmplug's objects in place of the OpenAI SDK's (see the README).
        ``updated_history`` is a new list each time; the last one is the whole conversation."""
        return self._pairs(*args, **kwargs)

    def events(self, *args: Any, **kwargs: Any) -> ChatStream:
        """Typed events: ``TextDelta`` / ``ReasoningDelta`` (stream) or ``AssistantReply`` per
        model turn, ``ToolCallEvent``, ``ToolResultEvent``, ``CompactionEvent``, and last
        ``ChatDone`` with the reply, the turn's usage and the updated history."""
        return self._events(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<llm_chat {self.__qualname__}>"


class BlockingChatAgent(ChatAgent):
    """``@llm_chat`` on a plain ``def``: the same pairs and events from blocking generators
    (``for response, history in agent(...)``), each call on an event loop of its own."""

    def __init__(
        self,
        fn: Callable[..., Any],
        events: Callable[..., ChatStream],
        pairs: Callable[..., AsyncGenerator[ChatPair, None]],
        llm: LLMInterface | ModelGroup,
    ) -> None:
        super().__init__(fn, events, pairs)
        self._llm = llm

    def __call__(self, *args: Any, **kwargs: Any) -> Generator[ChatPair, None, None]:  # type: ignore[override]
        self._refuse_in_loop()
        return _drive(self._pairs(*args, **kwargs), self._llm)

    def events(self, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:  # type: ignore[override]
        self._refuse_in_loop()
        return _drive(self._events(*args, **kwargs), self._llm)

    def _refuse_in_loop(self) -> None:
        import asyncio  # on use, not with llmplug (tests/core/test_import.py)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        raise RuntimeError(
            f"{self.__name__}() is a blocking @llm_chat called inside a running event loop; "
            "define it with `async def` and iterate it with `async for`"
        )


def _drive(
    agen: AsyncGenerator[T, None], llm: LLMInterface | ModelGroup
) -> Generator[T, None, None]:
    """Run ``agen`` on an event loop that lives as long as this generator. Stopping early
    closes ``agen`` (its key is freed at once), then the client made on this loop, so no
    socket outlives the loop that opened it."""
    import asyncio

    with asyncio.Runner() as runner:
        try:
            while True:
                try:
                    item = runner.run(_next(agen))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            try:
                runner.run(agen.aclose())
            finally:
                runner.run(llm.aclose())


async def _next(agen: AsyncGenerator[T, None]) -> T:
    return await anext(agen)


class ChatPairs:
    """Turns the tool loop's events into pairs. The history is read from the loop's own
    message list, converted once per message (not once per chunk)."""

    __slots__ = ("_dicts", "_messages", "_pending", "_raw", "_stream")

    def __init__(self, messages: list[Message], *, stream: bool, return_mode: ReturnMode) -> None:
        self._messages = messages
        self._dicts: HistoryList = []
        self._stream = stream
        self._raw = return_mode == "raw"
        self._pending: Any = None

    def history(self) -> HistoryList:
        n = len(self._dicts)
        if len(self._messages) > n:
            self._dicts.extend(msgspec.to_builtins(self._messages[n:]))
        return list(self._dicts)

    def feed(self, ev: object) -> list[ChatPair]:
        out: list[ChatPair] = []
        if self._pending is not None:
            # A whole reply is yielded with the history that holds it: the loop appends it
            # right after announcing it, before its next event.
            out.append((self._pending, self.history()))
            self._pending = None
        if isinstance(ev, TextDelta):
            out.append((ev if self._raw else ev.text, self.history()))
        elif isinstance(ev, ReasoningDelta):
            if self._raw:
                out.append((ev, self.history()))
        elif isinstance(ev, AssistantReply):
            if self._raw:
                self._pending = ev.completion
            elif ev.text:
                self._pending = ev.text
        elif isinstance(ev, TurnsDone):
            if not self._raw:
                out.append(("", self.history()))
            elif self._stream:
                out.append((ev.completion, self.history()))
        return out


def check_strict_signature(fn: Callable[..., Any]) -> None:
    """SimpleLLMFunc's canonical agent signature: ``(history, message: str | UserChatMessage)``
    and at most a ``_template_params`` parameter."""
    params = list(inspect.signature(fn).parameters.values())
    where = f"@llm_chat(strict_signature=True) on {fn.__name__!r}"
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        raise TypeError(f"{where}: *args and **kwargs are not allowed")
    if len(params) < 2 or params[0].name not in ("history", "chat_history"):
        raise TypeError(
            f"{where}: the signature must be `(history, message: str, ...)`, the first "
            "parameter named history or chat_history"
        )
    message = params[1]
    if message.name != "message":
        raise TypeError(f"{where}: the second parameter must be named `message`")
    try:
        annotation = typing.get_type_hints(fn).get("message", message.annotation)
    except NameError:
        annotation = message.annotation
    allowed = {"str", "UserChatMessage"}
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", None)
    if name not in allowed:
        raise TypeError(f"{where}: `message` must be annotated `str` or `UserChatMessage`")
    extra = [p.name for p in params[2:] if p.name != "_template_params"]
    if extra:
        raise TypeError(
            f"{where}: only `_template_params` may follow (history, message), not {extra[0]!r}"
        )
