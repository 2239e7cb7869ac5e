"""A real OpenAI-compatible HTTP server for tests, demos and benchmarks.

It speaks Chat Completions (``POST /v1/chat/completions``) and Responses (``POST /v1/responses``),
streamed or not, with scripted replies, recorded requests and injected faults::

    from llmplug.testing import LLMTestServer, Reply

    with LLMTestServer() as server:
        server.push(Reply(text="Hello there"))
        ...  # point a client at server.base_url
        assert server.requests[0].api == "chat"

Run ``python -m llmplug.testing --port 8000`` to serve from a separate process.
"""

from ._gemini import signature_of as gemini_signature
from ._replies import Error, Fault, Raw, RecordedRequest, Reply, ToolCallReply
from ._server import LLMTestServer

__all__ = [
    "Error",
    "Fault",
    "LLMTestServer",
    "Raw",
    "RecordedRequest",
    "Reply",
    "ToolCallReply",
    "gemini_signature",
]
