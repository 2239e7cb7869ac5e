"""Google's own SDK (``google-genai``) as the oracle: whatever Gemini bytes the server sends,
whole or as a stream, the plugin reads the same text, thoughts, function calls, signatures,
finish reason and token counts as the SDK's ``GenerateContentResponse`` does."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplug import Completion, Done
from llmplug.testing import LLMTestServer, Raw

from .conftest import MakeGemini

types = pytest.importorskip("google.genai.types")

FINISH_REASONS = ["STOP", "MAX_TOKENS", "SAFETY", "RECITATION", "MALFORMED_FUNCTION_CALL", "OTHER"]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_signature = st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode())
_text_part = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=20)},
    optional={"thought": st.just(True), "thoughtSignature": _signature},
)
_call_part = st.fixed_dictionaries(
    {
        "functionCall": st.fixed_dictionaries(
            {
                "name": st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
                "args": st.dictionaries(st.text(max_size=6), _json, max_size=3),
            }
        )
    },
    optional={"thoughtSignature": _signature},
)
_usage = st.fixed_dictionaries(
    {
        "promptTokenCount": st.integers(0, 10_000),
        "candidatesTokenCount": st.integers(0, 10_000),
    },
    optional={
        "thoughtsTokenCount": st.integers(0, 5_000),
        "cachedContentTokenCount": st.integers(0, 10_000),
    },
)
responses = st.fixed_dictionaries(
    {
        "candidates": st.tuples(
            st.lists(_text_part | _call_part, max_size=6), st.sampled_from(FINISH_REASONS)
        ).map(
            lambda pf: [
                {"content": {"role": "model", "parts": pf[0]}, "finishReason": pf[1], "index": 0}
            ]
        ),
        "usageMetadata": _usage,
        "modelVersion": st.just("gemini-test"),
    }
)


def oracle(body: dict[str, Any]) -> dict[str, Any]:
    """What the SDK reads from a response: the fields both sides have names for."""
    r = types.GenerateContentResponse.model_validate_json(json.dumps(body))
    parts = r.candidates[0].content.parts or []
    u = r.usage_metadata
    thoughts = u.thoughts_token_count or 0
    last_signature = None
    for p in parts:
        if p.function_call is None and p.thought_signature:
            last_signature = base64.b64encode(p.thought_signature).decode()
    return {
        "text": "".join(p.text for p in parts if p.text and not p.thought),
        "reasoning": "".join(p.text for p in parts if p.text and p.thought) or None,
        "calls": [
            (
                p.function_call.name,
                p.function_call.args,
                base64.b64encode(p.thought_signature).decode() if p.thought_signature else None,
            )
            for p in parts
            if p.function_call is not None
        ],
        "signature": last_signature,
        "finish": r.candidates[0].finish_reason.name,
        "output_tokens": (u.candidates_token_count or 0) + thoughts,
        "reasoning_tokens": thoughts,
        "input_tokens": u.prompt_token_count or 0,
    }


FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
FINISH["RECITATION"] = "content_filter"


def ours(c: Completion) -> dict[str, Any]:
    assert c.usage is not None
    turn = (c.provider_data or {}).get("gemini") or {}
    return {
        "text": c.text,
        "reasoning": c.reasoning,
        "calls": [
            (
                t.name,
                json.loads(t.arguments),
                ((t.provider_data or {}).get("gemini") or {}).get("thoughtSignature"),
            )
            for t in c.tool_calls
        ],
        "signature": turn.get("thoughtSignature"),
        "finish": c.finish_reason,
        "output_tokens": c.usage.output_tokens,
        "reasoning_tokens": c.usage.reasoning_tokens,
        "input_tokens": c.usage.input_tokens,
    }


def expected(body: dict[str, Any]) -> dict[str, Any]:
    want = oracle(body)
    finish = FINISH.get(want["finish"], want["finish"].lower())
    want["finish"] = "tool_calls" if finish == "stop" and want["calls"] else finish
    return want


def chunks(body: dict[str, Any]) -> list[bytes]:
    """The same response as a stream: a chunk per part, the finish reason on its own, the
    usage after it."""
    cand = body["candidates"][0]
    out = [
        {"candidates": [{"content": {"role": "model", "parts": [p]}, "index": 0}]}
        for p in cand["content"]["parts"]
    ]
    out.append({"candidates": [{"content": {"role": "model", "parts": []}, **_finish(cand)}]})
    out.append({"usageMetadata": body["usageMetadata"], "modelVersion": body["modelVersion"]})
    return [b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in out]


def _finish(cand: dict[str, Any]) -> dict[str, Any]:
    return {"finishReason": cand["finishReason"], "index": 0}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=responses)
async def test_the_plugin_reads_what_the_sdk_reads(
    server: LLMTestServer, gemini: MakeGemini, body: dict[str, Any]
) -> None:
    server.clear()
    llm = gemini()
    want = expected(body)
    server.push(Raw(body=json.dumps(body), content_type="application/json"))
    assert ours(await llm.chat("hi")) == want
    server.push(Raw(chunks=chunks(body)))
    events = [e async for e in llm.chat_stream("hi")]
    assert isinstance(events[-1], Done)
    assert ours(events[-1].completion) == want
