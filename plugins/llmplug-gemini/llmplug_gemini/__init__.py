"""The ``gemini`` wire format: the Gemini API spoken natively (``POST
{base_url}/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse``).

Installed as its own distribution and found through the ``llmplug`` entry-point group, exactly
as a third party's plugin would be. docs/plugins.md tells how it was built."""

from __future__ import annotations

from llmplug import Call, HTTPRequest, LLMInterface, hookimpl

from ._parse import FINISH, GeminiParser, classify_error, retry_delay
from ._request import THINKING_BUDGETS, WIRE, build_gemini_request

__all__ = [
    "FINISH",
    "GEMINI_BASE_URL",
    "THINKING_BUDGETS",
    "WIRE",
    "GeminiCompatible",
    "GeminiParser",
    "build_request",
    "classify_error",
    "parse_stream",
    "retry_delay",
]

#: Google's endpoint, for ``base_url``.
GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"

#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"wire": [WIRE]}


class GeminiCompatible(LLMInterface):
    """Any server that speaks the Gemini API (``base_url`` such as
    ``https://generativelanguage.googleapis.com/v1beta``, or LiteLLM's ``/v1beta``):
    ``LLMInterface(..., wire="gemini")`` by another name."""

    default_wire = WIRE


@hookimpl
def build_request(wire: str, call: Call, key: str) -> HTTPRequest | None:
    return build_gemini_request(call, key) if wire == WIRE else None


@hookimpl
def parse_stream(wire: str, call: Call) -> GeminiParser | None:
    return GeminiParser(call) if wire == WIRE else None
