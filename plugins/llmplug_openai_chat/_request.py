"""Building the Chat Completions request body from the neutral call."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from llmplug import Call, HTTPRequest, Tool

__all__ = ["build_chat_request"]


class _ChatTool(msgspec.Struct):
    function: Tool
    type: Literal["function"] = "function"


def build_chat_request(call: Call, key: str) -> HTTPRequest:
    body: dict[str, Any] = {"model": call.model, "messages": call.messages}
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
