"""Every hook is documented, and every hook is exercised by a plugin of the tests' own."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncGenerator, Awaitable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import msgspec
import pytest

import llmplug
from llmplug import (
    APIKeyPool,
    AttemptInfo,
    Call,
    CallInfo,
    Completion,
    GroupCall,
    HTTPRequest,
    KeyLease,
    Member,
    ModelGroup,
    OpenAICompatible,
    Registry,
    RunInfo,
    StreamEvent,
    StreamParser,
    ToolInfo,
    hookimpl,
    llm_chat,
)
from llmplug._engine import _hookspecs
from llmplug._engine._observe import observed_run
from llmplug.testing import LLMTestServer, Raw, Reply, ToolCallReply
from tests.core._wires import OLLAMA, Ollama, OllamaParser, ndjson

ROOT = Path(__file__).parent.parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(_hookspecs, inspect.isfunction)
    if hasattr(fn, "llmplug_spec")
)


def signature(hook: str) -> str:
    """``build_request(wire, call, key)``: the hook as the docs must name it."""
    return f"{hook}({', '.join(inspect.signature(getattr(_hookspecs, hook)).parameters)})"


def test_the_hooks_are_these() -> None:
    assert HOOKS == [
        "acquire_rate",
        "build_request",
        "check_key_strategy",
        "observe_attempt",
        "observe_call",
        "observe_run",
        "observe_tool",
        "parse_stream",
        "select_key",
        "select_member",
        "wrap_calls",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    spec = getattr(_hookspecs, hook)
    assert spec.__doc__ and len(spec.__doc__) > 40
    for doc in ("docs/architecture.md", "CONTRIBUTING.md", "README.md"):
        assert f"`{hook}(" in (ROOT / doc).read_text(), f"{hook} is not described in {doc}"
    # The guide has a section for the hook, named with all its arguments, and says what each
    # argument is.
    guide = GUIDE.read_text()
    heading = f"### `{signature(hook)}`"
    assert heading in guide, f"docs/plugins.md has no section {heading!r}"
    section = guide.split(heading, 1)[1].split("\n### ", 1)[0]
    for arg in inspect.signature(spec).parameters:
        assert f"`{arg}`" in section, f"docs/plugins.md does not say what {hook}'s {arg} is"
    assert "Returns" in section, f"docs/plugins.md does not say what {hook} returns"


def test_the_guide_describes_every_field_of_call_and_member_of_the_parser() -> None:
    guide = GUIDE.read_text()
    for field in msgspec.structs.fields(Call):
        assert f"| `{field.name}` |" in guide, f"Call.{field.name} is not in docs/plugins.md"
    members = [m for m in vars(StreamParser) if not m.startswith("_")]
    members += list(StreamParser.__annotations__)
    for member in {*members, "framing", "rate_limits"}:
        assert f"`{member}" in guide, f"the parser's {member} is not in docs/plugins.md"
    for name in ("HTTPRequest.post_json", "LLMTestServer", "Raw", "Reply", "Error", "Fault"):
        assert name in guide
    assert "docs/plugins.md" in (ROOT / "CONTRIBUTING.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_plugin(hook: str) -> None:
    # A third-party-style implementation (marked @hookimpl) of the hook in the tests or
    # examples proves the hook can be implemented and overridden from outside.
    pattern = re.compile(rf"@hookimpl[^\n]*\n\s*(?:async )?def {hook}\(")
    sources = [*ROOT.glob("tests/**/*.py"), *ROOT.glob("examples/*.py")]
    assert any(pattern.search(p.read_text()) for p in sources), f"no test plugin for {hook}"


# -- every hook answered by a plugin of the tests' own, in one call over HTTP ----------------

answered: list[str] = []


class RecordingWire(Ollama):
    @hookimpl
    def build_request(self, wire: str, call: Call, key: str) -> HTTPRequest | None:
        answered.append("build_request")
        return super().build_request(wire, call, key)

    @hookimpl
    def parse_stream(self, wire: str, call: Call) -> OllamaParser | None:
        answered.append("parse_stream")
        return super().parse_stream(wire, call)


class FirstHealthy:
    @hookimpl
    def check_key_strategy(
        self, strategy: str, settings: dict[str, Any], pool: APIKeyPool
    ) -> bool | None:
        if strategy != "first_healthy":
            return None
        answered.append("check_key_strategy")
        return True

    @hookimpl
    def select_key(self, strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
        if strategy != "first_healthy":
            return None
        answered.append("select_key")
        return pool.lease(pool.healthy()[0])


class FirstMember:
    @hookimpl
    def select_member(self, strategy: str, group: ModelGroup, call: GroupCall) -> Member | None:
        if strategy != "first":
            return None
        answered.append("select_member")
        return call.candidates[0]  # type: ignore[no-any-return]


class Watcher:
    @hookimpl
    def observe_attempt(self, info: AttemptInfo) -> None:
        answered.append("observe_attempt")

    @hookimpl
    def observe_call(self, info: CallInfo) -> None:
        answered.append("observe_call")

    @hookimpl
    def observe_tool(self, info: ToolInfo) -> None:
        answered.append("observe_tool")

    @hookimpl
    def observe_run(self, info: RunInfo) -> AbstractContextManager[None]:
        answered.append("observe_run")
        return nullcontext()


class PassThrough:
    """Wraps every call and passes it on, as a response cache does on a miss."""

    async def complete(self, call: Call, run: Any) -> Completion:
        answered.append("wrap_calls")
        return await run(call)  # type: ignore[no-any-return]

    async def stream(self, call: Call, run: Any) -> AsyncGenerator[StreamEvent, None]:
        answered.append("wrap_calls")
        async for event in run(call):
            yield event


class Passing:
    @hookimpl
    def wrap_calls(self, feature: str, config: Mapping[str, Any], owner: Any) -> Any:
        if feature != "cache" or config.get("kind") != "pass-through":
            return None
        return PassThrough()


class Open:
    kind = "open"


class OpenPlugin:
    @hookimpl
    def acquire_rate(self, limiter: object, cost: float) -> Awaitable[None] | None:
        if not isinstance(limiter, Open):
            return None
        answered.append("acquire_rate")
        return asyncio.sleep(0)


def shout(text: str) -> str:
    return text.upper()


async def talk(message: str) -> None:
    """Talk."""


async def test_every_hook_is_answered_by_a_test_plugin_over_http(server: LLMTestServer) -> None:
    ours = [RecordingWire(), FirstHealthy(), OpenPlugin(), Watcher(), FirstMember(), Passing()]
    registry = Registry(entry_points=False, plugins=[*ours, *llmplug.default_plugins()])
    pool = APIKeyPool(["sk-a"], "test", strategy="first_healthy", shared=False)
    body = ndjson({"message": {"content": "ok"}, "done": True})
    server.push(Raw(chunks=body, content_type="application/x-ndjson"))
    answered.clear()
    llm = OpenAICompatible(
        pool, "m", server.base_url, wire=OLLAMA, limiter=Open(), registry=registry
    )
    async with ModelGroup(
        [llm], strategy="first", registry=registry, cache={"kind": "pass-through"}
    ) as group:
        answered.clear()  # what the interface and group asked when made does not count
        # A run around one decorated call whose model asks for a tool.
        with observed_run(registry, RunInfo(kind="batch", name="test", llm=group)):
            events = [e async for e in group.chat_stream("hi")]
            server.push(
                Reply(tool_calls=[ToolCallReply(name="shout", arguments={"text": "hi"})]),
                Reply(text="done"),
            )
            chatty = OpenAICompatible(pool, "m", server.base_url, registry=registry)
            async for _ in llm_chat(llm_interface=chatty, toolkit=[shout])(talk)("hi"):
                pass
            await chatty.aclose()
    assert events[-1].completion.text == "ok"  # type: ignore[union-attr]
    assert len(server.requests) == 3
    # A new hook fails here until a plugin of the tests' own answers it in this call.
    assert sorted(set(answered)) == HOOKS
