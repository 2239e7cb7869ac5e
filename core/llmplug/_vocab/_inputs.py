"""What a call takes as messages and tools (one user string, dicts, Messages; Tools, dicts,
@tool functions), made the Messages and Tools of a :class:`~llmplug.Call`. Shared by the
interfaces, the model groups and the whole-call wrappers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import msgspec

from ._errors import ConfigError
from ._types import Message, Tool

__all__ = ["MessagesInput", "ToolsInput", "as_messages", "as_tools"]


class ToolSpec(Protocol):
    """A :func:`llmplug.tool` function as a call's ``tools`` reads it: the spec it carries."""

    __llmplug_tool__: Tool


MessagesInput = str | Sequence[Message | Mapping[str, Any]]
ToolsInput = Iterable[Tool | Mapping[str, Any] | ToolSpec] | None


def as_messages(messages: MessagesInput) -> list[Message]:
    if isinstance(messages, str):
        return [Message(role="user", content=messages)]
    if all(type(m) is Message for m in messages):
        return list(messages)  # type: ignore[arg-type]
    plain = _plain_messages(messages)
    if plain is not None:
        return plain
    try:
        return msgspec.convert(
            [msgspec.structs.asdict(m) if isinstance(m, Message) else m for m in messages],
            list[Message],
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid messages: {exc}") from None


def _plain_messages(messages: Sequence[Any]) -> list[Message] | None:
    """Messages that are all ``{"role": str, "content": str}`` dicts, the common case, without
    msgspec.convert's validation pass (it would build the very same Messages); else None."""
    out: list[Message] = []
    for m in messages:
        if type(m) is not dict or len(m) != 2:
            return None
        role, content = m.get("role"), m.get("content")
        if type(role) is not str or type(content) is not str:
            return None
        out.append(Message(role=role, content=content))
    return out


def as_tools(tools: ToolsInput) -> list[Tool] | None:
    if tools is None:
        return None
    out: list[Tool] = []
    for t in tools:
        if isinstance(t, Tool):
            out.append(t)
            continue
        spec = getattr(t, "__llmplug_tool__", None)
        if isinstance(spec, Tool):
            out.append(spec)
            continue
        if isinstance(t, Mapping):
            d = t.get("function", t) if t.get("type", "function") == "function" else t
            try:
                out.append(msgspec.convert({k: v for k, v in d.items() if k != "type"}, Tool))
            except msgspec.ValidationError as exc:
                raise ConfigError(f"invalid tool {d.get('name', '?')!r}: {exc}") from None
            continue
        raise ConfigError(
            f"a tool must be a Tool, a dict or a @tool function, got {type(t).__name__}"
        )
    return out or None
