"""The HTTP client under an interface: the user's own, or ours, and when ours is closed."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import pytest

from llmplug import (
    APIConnectionError,
    APITimeoutError,
    LLMInterface,
    TextDelta,
)
from llmplug.testing import Fault, LLMTestServer, Reply

MakeLLM = Callable[..., LLMInterface]


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_a_users_own_client_is_used_and_never_closed(
    server: LLMTestServer, make_llm: MakeLLM, module: Any
) -> None:
    async with module.AsyncClient(headers={"x-from": "my-client"}) as client:
        llm = make_llm(http_client=client)
        assert (await llm.chat("hi")).text == "echo: hi"
        server.push(Reply(text="a b c"))
        text = "".join([e.text async for e in llm.chat_stream("s") if isinstance(e, TextDelta)])
        assert text == "a b c"
        assert [r.headers["x-from"] for r in server.requests] == ["my-client", "my-client"]
        await llm.aclose()
        assert not client.is_closed
        assert (await llm.chat("still works")).text == "echo: still works"


class TracingHttpxClient(httpx.AsyncClient):
    """A user's subclass, defined outside httpx's own modules."""


class TracingHttpx2Client(httpx2.AsyncClient):
    """The same for httpx2."""


@pytest.mark.parametrize(
    "client_class",
    [httpx.AsyncClient, httpx2.AsyncClient, TracingHttpxClient, TracingHttpx2Client],
    ids=["httpx", "httpx2", "httpx-subclass", "httpx2-subclass"],
)
async def test_a_users_client_errors_become_typed_errors(
    server: LLMTestServer, make_llm: MakeLLM, client_class: Any
) -> None:
    async with client_class() as client:
        refused = make_llm(base_url="http://127.0.0.1:9/v1", http_client=client, max_retries=0)
        with pytest.raises(APIConnectionError):
            await refused.chat("hi")
        server.push(Fault(kind="stall_after_headers", seconds=5))
        slow = make_llm(http_client=client, max_retries=0)
        with pytest.raises(APITimeoutError):
            async for _ in slow.chat_stream("hi", timeout=0.2):
                pass


async def test_closing_waits_for_the_requests_still_running(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm()
    server.push(Reply(text="one two three four", chunk_delay=0.01))
    stream = llm.chat_stream("hi")
    first = await anext(stream)
    assert isinstance(first, TextDelta)
    await llm.aclose()  # a stream is still reading: the client must stay open under it
    rest = [e async for e in stream]
    text = first.text + "".join(e.text for e in rest if isinstance(e, TextDelta))
    assert text == "one two three four"
    await server.connections_closed()
    # A later call gets a fresh client.
    assert (await llm.chat("again")).text == "echo: again"


async def test_an_interface_works_across_event_loops(server: LLMTestServer) -> None:
    from llmplug import APIKeyPool, OpenAICompatible

    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t"), "m", server.base_url)

    async def call() -> str:
        return (await llm.chat("hi")).text

    async def call_and_close() -> str:
        try:
            return await call()
        finally:
            await llm.aclose()  # a client's sockets belong to its loop: close before it ends

    def in_new_loop() -> str:
        return asyncio.run(call_and_close())

    # Each asyncio.run is a new loop: the interface makes a client for each.
    assert await asyncio.to_thread(in_new_loop) == "echo: hi"
    assert await asyncio.to_thread(in_new_loop) == "echo: hi"
    assert await call() == "echo: hi"
    await llm.aclose()


@pytest.mark.parametrize("wire", ["openai-chat", "openai-responses"])
async def test_streams_read_to_the_end_reuse_one_connection(
    server: LLMTestServer, make_llm: MakeLLM, wire: str
) -> None:
    llm = make_llm(wire=wire)
    for i in range(5):
        server.push(Reply(text=f"stream {i}"))
        async for _ in llm.chat_stream("hi"):
            pass
        await llm.chat("and a plain call")
    # Ten calls, one after the other, on one kept-alive connection: no new handshakes.
    assert server.connections_accepted == 1


@pytest.mark.parametrize("module", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_every_request_goes_to_its_own_url_however_many_there_are(
    server: LLMTestServer, module: Any
) -> None:
    from llmplug import HTTPRequest
    from llmplug._engine._transport import Transport

    async with module.AsyncClient(base_url="http://127.0.0.1:9/ignored/") as client:
        transport = Transport(client)
        sent: list[str] = []
        # More distinct URLs than the transport keeps parsed, each sent twice.
        for i in [*range(100), *range(100)]:
            url = f"{server.base_url}/chat/completions?n={i}"
            request = HTTPRequest(url=url, headers={}, content=b'{"model": "m"}')
            response = await transport.send(request)
            await response.aclose()
            transport.response_closed()
            sent.append(f"n={i}")
    assert [r.query for r in server.requests] == sent
    assert {r.path for r in server.requests} == {"/v1/chat/completions"}


def _dropped_interface_leaves_others_working(base_url: str) -> list[str]:
    from llmplug import APIKeyPool, OpenAICompatible

    def made() -> OpenAICompatible:
        pool = APIKeyPool(["sk-x"], "t", shared=False)
        return OpenAICompatible(
            pool, "m", base_url, rate_limit_capacity=100, rate_limit_refill_rate=100.0
        )

    async def main() -> list[str]:
        a = made()
        await asyncio.gather(*(a.chat(f"a{i}") for i in range(30)))
        del a  # never closed: its pooled client and 30 sockets become garbage
        gc.collect()
        b = made()
        async with asyncio.timeout(10):
            replies = await asyncio.gather(*(b.chat(f"b{i}") for i in range(30)))
        await b.aclose()
        return [r.text for r in replies]

    return asyncio.run(main())


async def test_a_dropped_interface_never_affects_a_live_one(server: LLMTestServer) -> None:
    # The dropped interface's sockets must be closed on their loop, not by the garbage
    # collector: closed there, their descriptors were reused by b's sockets while the loop
    # still watched the old ones, and all 30 of b's answers were lost.
    texts = await asyncio.to_thread(_dropped_interface_leaves_others_working, server.base_url)
    assert texts == [f"echo: b{i}" for i in range(30)]


async def test_a_dropped_interface_closes_its_connections_on_its_loop(
    server: LLMTestServer,
) -> None:
    from llmplug import APIKeyPool, OpenAICompatible

    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t", shared=False), "m", server.base_url)
    await asyncio.gather(*(llm.chat("hi") for _ in range(5)))
    assert server.open_connections == 5
    del llm
    gc.collect()
    await server.connections_closed()


def test_an_interface_dropped_in_another_thread_closes_on_its_own_loop(
    server: LLMTestServer,
) -> None:
    # The loop keeps running in its thread; the last reference goes away in this one.
    from llmplug import APIKeyPool, OpenAICompatible

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        llm = OpenAICompatible(APIKeyPool(["sk-x"], "t", shared=False), "m", server.base_url)
        reply = asyncio.run_coroutine_threadsafe(llm.chat("hi"), loop).result(10)
        assert reply.text == "echo: hi"
        assert server.open_connections == 1
        del llm, reply
        gc.collect()
        server.wait_for_disconnects()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
