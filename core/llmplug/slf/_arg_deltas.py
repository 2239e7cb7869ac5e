"""``ToolCallArgumentsDeltaEvent``'s payloads: as a streamed tool call's arguments grow, what
each argument's text gained (the partial JSON closed and parsed after each piece)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from llmplug._vocab._types import ToolCallDelta

__all__ = ["ArgumentDeltas"]


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""
    emitted: dict[str, str] = field(default_factory=dict)


def _closed(text: str) -> str:
    """``text`` with its open string and brackets closed."""
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
    tail = ("\\" if escaped else "") + ('"' if in_string else "")
    return text + tail + "".join(reversed(stack))


def _parse(text: str) -> dict[str, Any] | None:
    for candidate in (text, _closed(text)):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


class ArgumentDeltas:
    """Feeds on one model turn's ``ToolCallDelta`` events."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}

    def feed(self, ev: ToolCallDelta) -> list[tuple[str, str, str, str]]:
        """(tool name, call id, argument name, text it gained) for each argument that grew."""
        call = self._calls.setdefault(ev.index, _Call())
        call.id = ev.id or call.id
        call.name = ev.name or call.name
        call.arguments += ev.arguments
        if not call.arguments or not call.id:
            return []
        parsed = _parse(call.arguments)
        if parsed is None:
            return []
        out = []
        for name, value in parsed.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            before = call.emitted.get(name, "")
            if text == before or (before and before.startswith(text)):
                continue  # a partial parse can read less than a fuller one did
            delta = text[len(before) :] if before and text.startswith(before) else text
            call.emitted[name] = text
            if delta:
                out.append((call.name, call.id, name, delta))
        return out
