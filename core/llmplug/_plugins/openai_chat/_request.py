"""Building the Chat Completions request body from the neutral call."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from llmplug import Call, ContentPart, HTTPRequest, ImagePart, Message, TextPart, Tool

__all__ = ["build_chat_request"]


class _ChatTool(msgspec.Struct):
    function: Tool
    type: Literal["function"] = "function"


def build_chat_request(call: Call, key: str) -> HTTPRequest:
    body: dict[str, Any] = {"model": call.model, "messages": _messages(call.messages)}
    if call.tools:
        body["tools"] = [_ChatTool(t) for t in call.tools]
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    for k, v in call.params.items():
        # A None value means "not set": strict servers reject explicit nulls.
        if v is not None:
            body[k] = v
    return HTTPRequest.post_json(call.base_url + "/chat/completions", body, call, key)


def _kept(m: Message) -> bool:
    """Whether an assistant message holds provider data, which no Chat server takes."""
    return m.provider_data is not None or any(
        c.provider_data is not None for c in m.tool_calls or ()
    )


def _bare(m: Message) -> Message:
    calls = [msgspec.structs.replace(c, provider_data=None) for c in m.tool_calls or ()]
    return msgspec.structs.replace(m, provider_data=None, tool_calls=calls or None)


def _messages(messages: list[Message]) -> list[Message]:
    if not any(
        (m.role == "tool" and isinstance(m.content, list)) or (m.role == "assistant" and _kept(m))
        for m in messages
    ):
        return messages  # the common case: sent as they are, no copy
    # Provider data is another wire's (a history from a group's other member): left out.
    # A Chat tool message carries text only: a tool's images follow the turn's tool results
    # in one user message (a user message between two tool results would be rejected).
    out: list[Message] = []
    names: dict[str, str] = {}
    pending: list[ContentPart] = []
    for m in messages:
        if m.role != "tool" and pending:
            out.append(Message(role="user", content=pending))
            pending = []
        if m.role == "assistant":
            names.update((c.id, c.function.name) for c in m.tool_calls or ())
            if _kept(m):
                m = _bare(m)  # another wire's data, or none of any Chat server's
        if m.role != "tool" or not isinstance(m.content, list):
            out.append(m)
            continue
        images = [p for p in m.content if isinstance(p, ImagePart)]
        text = m.text
        if images:
            name = names.get(m.tool_call_id or "", "the tool")
            note = f"({len(images)} image(s) follow in the next user message.)"
            text = f"{text}\n\n{note}" if text else note
            pending.append(TextPart(f"The image(s) returned by {name} ({m.tool_call_id}):"))
            pending.extend(images)
        out.append(Message(role="tool", content=text, tool_call_id=m.tool_call_id, name=m.name))
    if pending:
        out.append(Message(role="user", content=pending))
    return out
