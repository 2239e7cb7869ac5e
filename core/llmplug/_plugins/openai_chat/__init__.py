"""The default ``openai-chat`` wire format: OpenAI Chat Completions (``POST /chat/completions``)."""

from __future__ import annotations

from llmplug import Call, HTTPRequest, hookimpl

from ._parse import ChatParser
from ._request import build_chat_request

__all__ = ["WIRE", "ChatParser", "build_request", "parse_stream"]

WIRE = "openai-chat"
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"wire": [WIRE]}


@hookimpl(trylast=True)
def build_request(wire: str, call: Call, key: str) -> HTTPRequest | None:
    return build_chat_request(call, key) if wire == WIRE else None


@hookimpl(trylast=True)
def parse_stream(wire: str, call: Call) -> ChatParser | None:
    return ChatParser(call) if wire == WIRE else None
