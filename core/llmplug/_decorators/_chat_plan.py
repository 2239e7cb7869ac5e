"""What an ``@llm_chat`` agent is made of, for :mod:`llmplug.slf`: SimpleLLMFunc's event
stream runs the agent's own prompt building and tools, with events of its own."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmplug._interfaces._group import ModelGroup
    from llmplug._interfaces._interface import LLMInterface
    from llmplug._vocab._types import Message

    from ._chat_agent import ChatAgent
    from ._events import CompactionEvent
    from ._tool import Toolkit

__all__ = ["ChatPlan", "plan_of", "register"]


@dataclass(frozen=True)
class ChatPlan:
    fn: Callable[..., Any]
    #: (args, kwargs, guidance_block) -> the call's messages, provider params and compaction
    #: event; guidance_block=False leaves the tools' prompt injection block out
    start: Callable[
        [tuple[Any, ...], dict[str, Any], bool],
        Awaitable[tuple[list[Message], dict[str, Any], CompactionEvent | None]],
    ]
    llm: LLMInterface | ModelGroup
    toolkit: Toolkit
    stream: bool
    max_tool_calls: int | None


_PLANS: weakref.WeakKeyDictionary[ChatAgent, ChatPlan] = weakref.WeakKeyDictionary()


def register(agent: ChatAgent, plan: ChatPlan) -> None:
    _PLANS[agent] = plan


def plan_of(agent: ChatAgent) -> ChatPlan:
    return _PLANS[agent]
