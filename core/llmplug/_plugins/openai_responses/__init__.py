"""The default ``openai-responses`` wire format: the OpenAI Responses API (``POST /responses``)."""

from __future__ import annotations

from llmplug import Call, HTTPRequest, hookimpl

from ._parse import ResponsesParser
from ._request import build_responses_request

__all__ = ["WIRE", "ResponsesParser", "build_request", "parse_stream"]

WIRE = "openai-responses"
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"wire": [WIRE]}


@hookimpl(trylast=True)
def build_request(wire: str, call: Call, key: str) -> HTTPRequest | None:
    return build_responses_request(call, key) if wire == WIRE else None


@hookimpl(trylast=True)
def parse_stream(wire: str, call: Call) -> ResponsesParser | None:
    return ResponsesParser(call) if wire == WIRE else None
