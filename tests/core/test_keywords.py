"""SimpleLLMFunc's decorator, tool and call keywords: honoured, or refused when the function is
decorated with what to use instead; never sent to the provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llmplug import (
    ConfigError,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    UserChatMessage,
    llm_chat,
    llm_function,
    tool,
)
from llmplug.testing import LLMTestServer, RecordedRequest

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]


def system_prompt(req: RecordedRequest) -> str:
    body = req.json
    if "instructions" in body:
        return str(body["instructions"])
    return str(body["messages"][0]["content"])


# -- refused at decoration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "value", "advice"),
    [
        ("return_mode", "text", "@llm_chat keyword"),
        ("stream", True, "@llm_chat keyword"),
        ("strict_signature", True, "@llm_chat keyword"),
        ("enable_event", True, "use @llm_chat and agent.events"),
        ("self_reference", object(), "SelfReference"),
        ("self_reference_key", "main", "SelfReference"),
        ("retry_on_exception", True, "max_retries="),
    ],
)
def test_llm_function_refuses_keywords_that_are_not_provider_parameters(
    make_llm: MakeLLM, keyword: str, value: Any, advice: str
) -> None:
    with pytest.raises(ConfigError, match=advice):
        llm_function(llm_interface=make_llm(), **{keyword: value})


@pytest.mark.parametrize(
    ("keyword", "value", "advice"),
    [
        ("enable_event", True, r"agent\.events\(\.\.\.\)"),
        ("self_reference", object(), "pass it to the next call"),
        ("self_reference_key", "main", "pass it to the next call"),
        ("return_mode", "json", "'text' or 'raw'"),
        ("system_prompt_template", "{x}", "the docstring is the system prompt"),
        ("retry_on_exception", True, "max_retries="),
    ],
)
def test_llm_chat_refuses_keywords_it_does_not_honour(
    make_llm: MakeLLM, keyword: str, value: Any, advice: str
) -> None:
    with pytest.raises(ConfigError, match=advice):
        llm_chat(llm_interface=make_llm(), **{keyword: value})


def test_tool_refuses_too_long_to_file() -> None:
    with pytest.raises(ConfigError, match="shorten the result"):
        tool(name="t", description="d", too_long_to_file=True)


async def test_abort_signal_is_refused_with_what_to_do_instead(make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm())
    async def agent(message: str) -> None:
        """Be brief."""

    with pytest.raises(TypeError, match="cancel the task"):
        [_ async for _ in agent("hi", _abort_signal=object())]


# -- strict_signature ---------------------------------------------------------------------------


async def test_strict_signature_accepts_the_canonical_agent(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_chat(llm_interface=make_llm(), strict_signature=True)
    async def agent(
        history: list[dict[str, Any]], message: str, _template_params: Any = None
    ) -> None:
        """You speak {language}."""

    pairs = [p async for p in agent([], "bonjour", _template_params={"language": "French"})]
    assert pairs[-1][0] == ""
    sent = server.requests[0].json["messages"]
    assert sent == [
        {"role": "system", "content": "You speak French."},
        {"role": "user", "content": "bonjour"},
    ]


def test_strict_signature_accepts_a_user_chat_message(make_llm: MakeLLM) -> None:
    @llm_chat(llm_interface=make_llm(), strict_signature=True)
    async def agent(chat_history: list[dict[str, Any]], message: UserChatMessage) -> None:
        """Vision."""


def _message_first(message: str, history: list[Any]) -> None: ...
def _unannotated(history: list[Any], message) -> None: ...  # type: ignore[no-untyped-def]
def _misnamed(history: list[Any], text: str) -> None: ...
def _extra(history: list[Any], message: str, style: str = "") -> None: ...
def _varargs(history: list[Any], message: str, *more: str) -> None: ...


@pytest.mark.parametrize(
    ("fn", "problem"),
    [
        (_message_first, "first parameter named history"),
        (_unannotated, "annotated `str` or `UserChatMessage`"),
        (_misnamed, "named `message`"),
        (_extra, "not 'style'"),
        (_varargs, r"\*args"),
    ],
)
def test_strict_signature_refuses_other_signatures(
    make_llm: MakeLLM, fn: Callable[..., Any], problem: str
) -> None:
    with pytest.raises(TypeError, match=problem):
        llm_chat(llm_interface=make_llm(), strict_signature=True)(fn)


# -- @tool(best_practices=..., prompt_injection_builder=...) ------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_best_practices_join_the_tool_description(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    @tool(
        name="search",
        description="Search the web",
        best_practices=["Use short queries.", "Use short queries.", " Quote exact phrases. "],
    )
    async def search(query: str) -> str:
        return "results"

    @llm_function(llm_interface=make_llm(interface=wire), toolkit=[search])
    async def research(topic: str) -> str:
        """Research."""

    await research("llmplug")
    (sent,) = server.requests[0].json["tools"]
    description = (sent.get("function") or sent)["description"]
    assert description == (
        "Search the web\n\nBest practices:\n- Use short queries.\n- Quote exact phrases."
    )


@pytest.mark.parametrize("wire", WIRES)
async def test_prompt_injection_builder_adds_to_each_calls_system_prompt(
    server: LLMTestServer, make_llm: MakeLLM, wire: type[LLMInterface]
) -> None:
    seen: list[dict[str, Any]] = []
    turn = iter(["Call 1", "Call 2", "Call 3"])

    def guidance(context: dict[str, Any]) -> str:
        seen.append(context)
        return f"  {next(turn)}: read before you write.  "

    @tool(name="edit", description="Edit a file", prompt_injection_builder=guidance)
    async def edit(path: str) -> str:
        return "ok"

    llm = make_llm(interface=wire)

    @llm_function(llm_interface=llm, toolkit=[edit])
    async def fix(bug: str) -> str:
        """Fix the bug."""

    @llm_chat(llm_interface=llm, toolkit=[edit])
    async def agent(message: str, history: Any = None) -> None:
        """You are a coding agent."""

    await fix("off by one")
    pairs = [p async for p in agent("hello", [])]
    [_ async for _ in agent("again", pairs[-1][1])]
    block = '<tool_best_practices>\n<tool name="edit">\n{}: read before you write.\n</tool>\n'
    block += "</tool_best_practices>"
    prompts = [system_prompt(r) for r in server.requests]
    assert prompts[0].endswith("\n\n" + block.format("Call 1"))
    assert prompts[1] == "You are a coding agent.\n\n" + block.format("Call 2")
    # A history's system message gets this call's block in place of the earlier one.
    assert prompts[2] == "You are a coding agent.\n\n" + block.format("Call 3")
    assert seen[0] == {"function_name": "fix", "tool_name": "edit"}
    assert seen[1] == {"function_name": "agent", "tool_name": "edit"}
