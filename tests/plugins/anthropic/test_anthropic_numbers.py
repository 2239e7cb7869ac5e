"""Hostile numbers on the anthropic-messages wire: ``anthropic-ratelimit-*`` headers and usage
counts of any kind (dates in year 9999, 1e999, negatives, 10**40, "abc") never cost the answer,
never rest a key longer than a day, and keep the usage books finite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmplug import Done
from llmplug.testing import LLMTestServer, Raw, Reply
from llmplug_anthropic import AnthropicCompatible
from tests.hostile import BODY_NUMBER, EXAMPLES, HEADER_NUMBER, Interfaces, bounded, usage_ok

#: Anthropic's resets are RFC 3339 dates: far future, far past, malformed, or any number.
RESET = st.one_of(
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00+00:00",
            "2099-01-01T00:00:00+14:00",
            "2026-13-45T99:99:99Z",
        ]
    ),
    HEADER_NUMBER,
)


@pytest.fixture(scope="module")
def llms(_session_server: LLMTestServer) -> Iterator[Interfaces]:
    made = Interfaces(_session_server)
    yield made
    made.close()


@EXAMPLES
@given(reset=RESET, remaining=HEADER_NUMBER, which=st.sampled_from(["requests", "tokens"]))
def test_any_rate_limit_headers_leave_the_answer_and_a_rest_of_at_most_a_day(
    llms: Interfaces, reset: str, remaining: str, which: str
) -> None:
    server = llms.server
    server.clear()
    p = "anthropic-ratelimit-"
    headers = {f"{p}{which}-remaining": "0", f"{p}{which}-reset": reset}
    server.push(Reply(text="first", headers=headers))
    server.push(Reply(text="second", headers={f"{p}tokens-remaining": remaining}))
    server.push(Reply(text="third"))
    llm = llms.get(["sk-a", "sk-b"], AnthropicCompatible)
    answers = [llms.runner.run(llm.chat(t)).text for t in ("one", "two", "three")]
    assert answers == ["first", "second", "third"]
    bounded(llm.key_pool.status())


def _body(n: str) -> str:
    return (
        '{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":'
        '"text","text":"the answer"}],"stop_reason":"end_turn","usage":{"input_tokens":'
        f'{n},"output_tokens":{n},"cache_read_input_tokens":{n},'
        f'"cache_creation_input_tokens":{n}}}}}'
    )


def _stream(n: str) -> str:
    events = [
        ("message_start", '{"type":"message_start","message":{"id":"msg_1","type":"message",'
         '"role":"assistant","model":"m","content":[],"usage":{"input_tokens":'
         f'{n},"output_tokens":1,"cache_read_input_tokens":{n}}}}}}}'),
        ("content_block_start", '{"type":"content_block_start","index":0,"content_block":'
         '{"type":"text","text":""}}'),
        ("content_block_delta", '{"type":"content_block_delta","index":0,"delta":'
         '{"type":"text_delta","text":"the answer"}}'),
        ("content_block_stop", '{"type":"content_block_stop","index":0}'),
        ("message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn"},'
         f'"usage":{{"output_tokens":{n}}}}}'),
        ("message_stop", '{"type":"message_stop"}'),
    ]  # fmt: skip
    return "".join(f"event: {name}\ndata: {data}\n\n" for name, data in events)


@EXAMPLES
@given(n=BODY_NUMBER, stream=st.booleans())
def test_any_usage_count_leaves_the_answer_and_finite_books(
    llms: Interfaces, n: str, stream: bool
) -> None:
    server = llms.server
    server.clear()
    llm = llms.get(["sk-a"], AnthropicCompatible)
    if stream:
        server.push(Raw(body=_stream(n)))

        async def events() -> list[Done]:
            return [e async for e in llm.chat_stream("hi") if isinstance(e, Done)]

        completion = llms.runner.run(events())[0].completion
    else:
        server.push(Raw(body=_body(n), content_type="application/json"))
        completion = llms.runner.run(llm.chat("hi"))
    assert completion.text == "the answer"
    usage_ok(completion.usage)
    usage_ok(llm.usage.total())
    bounded(llm.key_pool.status())
