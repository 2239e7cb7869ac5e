"""The captured content's form, for any conversation: valid JSON in the conventions' shape,
every message's text kept, system messages apart, tool calls and results paired by id."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from llmplug import Call, Completion, FunctionCall, Message, MessageToolCall, ToolCall
from llmplug_otel import _attrs

texts = st.text(max_size=40)
ids = st.text(alphabet="abcdefghij0123456789_-", min_size=1, max_size=8)
arguments = st.one_of(
    st.dictionaries(st.text(max_size=5), st.integers() | texts, max_size=3).map(json.dumps),
    texts,  # a model may write arguments that are not JSON
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    if role == "tool":
        return Message(role="tool", content=draw(texts), tool_call_id=draw(ids))
    if role == "assistant":
        calls = draw(
            st.lists(
                st.builds(
                    lambda i, n, a: MessageToolCall(id=i, function=FunctionCall(n, a)),
                    ids,
                    texts,
                    arguments,
                ),
                max_size=2,
            )
        )
        return Message(role="assistant", content=draw(texts) or None, tool_calls=calls or None)
    return Message(role=role, content=draw(texts))


@settings(max_examples=200, deadline=None)
@given(st.lists(messages(), max_size=8))
def test_any_conversation_is_captured_in_the_conventions_form(history: list[Message]) -> None:
    call = Call(provider="p", model="m", wire="openai-chat", base_url="http://h", messages=history)
    inputs = json.loads(_attrs.input_messages(call))
    rest = [m for m in history if m.role not in ("system", "developer")]
    assert [m["role"] for m in inputs] == [m.role for m in rest]
    for captured, m in zip(inputs, rest, strict=True):
        parts = captured["parts"]
        if m.role == "tool":
            assert parts == [
                {"type": "tool_call_response", "id": m.tool_call_id, "response": m.text}
            ]
            continue
        assert "".join(p["content"] for p in parts if p["type"] == "text") == m.text
        calls = [p for p in parts if p["type"] == "tool_call"]
        assert [(c["id"], c["name"]) for c in calls] == [
            (tc.id, tc.function.name) for tc in m.tool_calls or ()
        ]
    system = _attrs.system_instructions(call)
    wanted = "".join(m.text for m in history if m.role in ("system", "developer"))
    got = "".join(p["content"] for p in json.loads(system)) if system else ""
    assert got == wanted


@settings(max_examples=100, deadline=None)
@given(texts, st.lists(st.tuples(ids, texts, arguments), max_size=3), st.none() | texts)
def test_any_answer_is_one_assistant_output_message(
    text: str, calls: list[tuple[str, str, str]], reasoning: str | None
) -> None:
    c = Completion(
        text=text,
        tool_calls=[ToolCall(i, n, a) for i, n, a in calls],
        reasoning=reasoning,
        finish_reason="tool_calls" if calls else "stop",
    )
    (out,) = json.loads(_attrs.output_messages(c))
    assert out["role"] == "assistant" and out["finish_reason"] == c.finish_reason
    kinds = [p["type"] for p in out["parts"]]
    assert kinds == (
        ["reasoning"] * bool(reasoning) + ["text"] * bool(text) + ["tool_call"] * len(calls)
    )
