"""An answer kept without its key is stored under the question that was asked, whatever the
caller or the plugins do before its key is made; and a call joins the identical call in flight
whichever way that call led. (Found by a review of hints: each failed before its fix.)"""

from __future__ import annotations

import asyncio
from typing import Any

from msgspec.structs import replace

from llmplug import Call, HTTPRequest, Tool, hookimpl
from llmplug._plugins.openai_chat._request import build_chat_request
from llmplug.testing import Fault, LLMTestServer, Reply

from .conftest import Cached, Watch, flushed, looked


async def test_an_answer_is_stored_under_its_question_though_the_caller_reuses_its_params(
    server: LLMTestServer, cached: Cached
) -> None:
    # The caller builds its stop list as it goes (a value of its own, passed to chat()). The
    # answer to the first question must be stored under that question, the request sent.
    llm = cached()
    await looked(llm)
    stop = ["END"]
    server.push(Reply(text="the answer with one stop"))
    first = await llm.chat("q", stop=stop)
    assert not first.cached
    stop.append("STOP")  # after chat() returned: the next question's list
    await flushed(llm)
    server.push(Reply(text="the answer with two stops"))
    second = await llm.chat("q", stop=["END", "STOP"])
    assert (second.text, second.cached) == ("the answer with two stops", False)
    again = await llm.chat("q", stop=["END"])
    assert (again.text, again.cached) == ("the answer with one stop", True)
    assert [r.json["stop"] for r in server.requests] == [["END"], ["END", "STOP"]]


async def test_a_call_joins_the_identical_call_in_flight_once_the_store_learns_its_hints(
    server: LLMTestServer, cached: Cached
) -> None:
    # A new process's first call makes its key (the file's hints are not known yet) and waits
    # for the provider; meanwhile the writer thread looks at the file (it does on its own,
    # moments after that call's read). The same question asked then is in flight: one request.
    llm = cached()
    server.push(Fault("stall_after_headers"))
    first = asyncio.ensure_future(llm.chat("q"))
    await server.requests_arrived(1)
    await looked(llm)

    async def release() -> None:
        server.release_stalls()

    # (Tasks start in the order they were made: the second call starts before the release.)
    second = asyncio.ensure_future(llm.chat("q"))
    released = asyncio.ensure_future(release())
    a, b, _ = await asyncio.gather(first, second, released)
    assert len(server.requests) == 1
    assert b.cached and b.text == a.text


class Seeded:
    """Sends every call to ``base_url`` with ``"seed": 7`` (a plugin an application turns on
    while it runs)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    @hookimpl(tryfirst=True)
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        if wire != "openai-chat" or call.base_url != self.base_url:
            return None
        return build_chat_request(replace(call, params={**call.params, "seed": 7}), key)


async def test_an_answer_is_stored_under_the_request_sent_though_the_plugins_change_after(
    server: LLMTestServer, cached: Cached, watched: Watch
) -> None:
    llm = cached()
    await looked(llm)
    server.push(Reply(text="the answer without a seed"))
    first = await llm.chat("q")
    assert not first.cached and "seed" not in server.requests[0].json
    watched(llm, Seeded(server.base_url))
    await flushed(llm)
    server.push(Reply(text="the answer with seed 7"))
    seeded = await llm.chat("q")
    assert (seeded.text, seeded.cached) == ("the answer with seed 7", False)


async def test_an_answer_is_stored_under_its_tools_though_the_caller_changes_their_schema(
    server: LLMTestServer, cached: Cached
) -> None:
    llm = cached()
    await looked(llm)
    schema: dict[str, Any] = {"type": "object", "properties": {"city": {"type": "string"}}}
    tool = Tool(name="weather", description="the weather", parameters=schema)
    server.push(Reply(text="asked with a city"))
    first = await llm.chat("q", tools=[tool])
    assert not first.cached
    schema["properties"]["day"] = {"type": "string"}  # after chat() returned
    await flushed(llm)
    server.push(Reply(text="asked with a city and a day"))
    second = await llm.chat("q", tools=[tool])
    assert (second.text, second.cached) == ("asked with a city and a day", False)
    old = Tool(name="weather", description="the weather", parameters={
        "type": "object", "properties": {"city": {"type": "string"}}})  # fmt: skip
    again = await llm.chat("q", tools=[old])
    assert (again.text, again.cached) == ("asked with a city", True)
