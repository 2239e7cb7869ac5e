"""A base_url with a query (``?api-version=`` for Azure, ``?key=`` for Google-style APIs): every
request goes to the wire's path with that query after it, on every wire, streamed or not."""

from __future__ import annotations

import pytest

from llmplug import APIKeyPool, LLMInterface, OpenAICompatible, OpenAIResponsesCompatible
from llmplug.testing import LLMTestServer

from .test_redaction import stream_text


@pytest.mark.parametrize(
    ("cls", "path"),
    [(OpenAICompatible, "/v1/chat/completions"), (OpenAIResponsesCompatible, "/v1/responses")],
)
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "chat_stream"])
async def test_the_base_url_query_follows_the_wire_path(
    server: LLMTestServer, cls: type[LLMInterface], path: str, stream: bool
) -> None:
    base_url = server.base_url + "/?api-version=2024-10-21&key=K1"
    llm = cls(APIKeyPool(["sk-q"], "p", shared=False), "m", base_url)
    if stream:
        assert await stream_text(llm) == "echo: hi"
    else:
        assert (await llm.chat("hi")).text == "echo: hi"
    (request,) = server.requests
    assert request.path == path
    assert request.query == "api-version=2024-10-21&key=K1"
    assert llm.base_url == server.base_url + "?api-version=2024-10-21&key=K1"
    await llm.aclose()
