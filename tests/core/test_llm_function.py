"""@llm_function over real HTTP: prompts, typed replies, repair, fallback, tools, sync use."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from typing import Any, Literal, TypedDict

import msgspec
import pytest

from llmplug import (
    ConfigError,
    LLMInterface,
    OpenAICompatible,
    OpenAIResponsesCompatible,
    OutputValidationError,
    ToolLoopError,
    llm_function,
    tool,
)
from llmplug.testing import Error, LLMTestServer, RecordedRequest, Reply, ToolCallReply

MakeLLM = Callable[..., LLMInterface]
WIRES = [OpenAICompatible, OpenAIResponsesCompatible]


class Analysis(msgspec.Struct):
    sentiment: Literal["positive", "negative", "neutral"]
    keywords: list[str]


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Box(TypedDict):
    width: int
    height: int


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


def schema_of(req: RecordedRequest) -> dict[str, Any]:
    body = req.json
    if "response_format" in body:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        return dict(fmt["json_schema"]["schema"])
    fmt = body["text"]["format"]
    assert fmt["type"] == "json_schema"
    return dict(fmt["schema"])


def returning(llm: LLMInterface, return_type: Any, doc: str = "Extract the data.") -> Any:
    """An ``llm_function`` of one text argument whose return type is a test's parameter."""

    async def extract(text: str) -> Any: ...

    extract.__doc__ = doc
    extract.__annotations__["return"] = return_type
    return llm_function(llm_interface=llm)(extract)


def messages_of(req: RecordedRequest) -> list[tuple[str, str]]:
    body = req.json
    if "messages" in body:
        return [(m["role"], m.get("content") or "") for m in body["messages"]]
    out = [("system", body.get("instructions", ""))]
    for item in body["input"]:
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content)
        out.append((item.get("role", item.get("type", "")), content or item.get("output", "")))
    return out


async def test_text_function_prompt_and_reply(server: LLMTestServer, make_llm: MakeLLM) -> None:
    llm = make_llm()

    @llm_function(llm_interface=llm, temperature=0.2)
    async def translate(text: str, target: str = "French") -> str:
        """Translate the text into the target language."""

    server.push(Reply(text="Bonjour"))
    assert await translate("Hello") == "Bonjour"
    (req,) = server.requests
    (sys_role, system), (user_role, user) = messages_of(req)
    assert (sys_role, user_role) == ("system", "user")
    assert "Translate the text into the target language." in system
    assert user == "text: Hello\ntarget: French"
    assert req.json["temperature"] == 0.2
    assert "response_format" not in req.json


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("return_type", "reply", "expected"),
    [
        (Analysis, '{"sentiment": "positive", "keywords": ["sun"]}', Analysis("positive", ["sun"])),
        (Point, '{"x": 1.5, "y": -2}', Point(1.5, -2.0)),
        (Box, '{"width": 3, "height": 4}', {"width": 3, "height": 4}),
        (int, '{"result": 42}', 42),
        (list[str], '{"result": ["a", "b"]}', ["a", "b"]),
        (Literal["yes", "no"], '{"result": "no"}', "no"),
        (Color, '{"result": "green"}', Color.GREEN),
        (bool, '{"result": true}', True),
    ],
)
async def test_typed_replies_use_structured_output(
    server: LLMTestServer,
    make_llm: MakeLLM,
    wire: type[LLMInterface],
    return_type: Any,
    reply: str,
    expected: Any,
) -> None:
    fn = returning(make_llm(interface=wire), return_type, "Analyze the text.")
    server.push(Reply(text=reply))
    assert await fn("It is sunny") == expected
    schema = schema_of(server.requests[0])
    assert schema["type"] == "object"


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("return_type", "reply", "expected"),
    [
        (Color, '"green"', Color.GREEN),
        (Color, "green", Color.GREEN),
        (int, "42", 42),
        (list[str], '["a", "b"]', ["a", "b"]),
    ],
)
async def test_a_bare_value_from_a_server_that_ignores_response_format_is_accepted(
    server: LLMTestServer,
    make_llm: MakeLLM,
    wire: type[LLMInterface],
    return_type: Any,
    reply: str,
    expected: Any,
) -> None:
    fn = returning(make_llm(interface=wire), return_type, "Classify the text.")
    server.push(Reply(text=reply))
    assert await fn("grass") == expected
    assert len(server.requests) == 1  # no repair turn


class Holder(msgspec.Struct):
    data: Any


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("kind", ["wrapped", "struct", "pydantic"])
async def test_a_deeply_nested_reply_is_a_validation_failure(
    server: LLMTestServer, make_llm: MakeLLM, kind: str, depth: int
) -> None:
    import pydantic

    class PydanticHolder(pydantic.BaseModel):
        data: Any

    return_type: Any = {"wrapped": list[Any], "struct": Holder, "pydantic": PydanticHolder}[kind]
    fn = returning(make_llm(), return_type)
    reply = nested(depth) if kind == "wrapped" else f'{{"data": {nested(depth)}}}'
    server.push(Reply(text=reply), Reply(text=reply))
    with pytest.raises(OutputValidationError, match="does not match") as info:
        await fn("x")
    assert info.value.raw == reply
    assert len(server.requests) == 2
    repair = messages_of(server.requests[1])[-1][1]
    assert re.search("nested too deeply|recursion limit", repair)  # the repair turn says why


async def test_an_argument_nested_too_deeply_to_show_is_a_clear_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm())
    async def summarize(data: list[Any]) -> str:
        """Summarize the data."""

    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match=r"argument 'data'.*nested too deeply"):
        await summarize(deep)
    assert server.requests == []


async def test_docstring_placeholders_are_filled(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_function(llm_interface=make_llm())
    async def analyze(text: str) -> str:
        """Analyze the sentiment of {language} text. Output like {"a": 1}."""

    await analyze("x", _template_params={"language": "English"})  # type: ignore[call-arg]
    system = messages_of(server.requests[0])[0][1]
    assert 'Analyze the sentiment of English text. Output like {"a": 1}.' in system


class User:
    name = "Ada"


@pytest.mark.parametrize(
    ("doc", "params", "system"),
    [
        # Written for str.format (as SimpleLLMFunc fills it): exactly what str.format gives.
        (
            "Reply {{'ok': true}} in {language}.",
            {"language": "French"},
            "Reply {'ok': true} in French.",
        ),
        (
            "Score {score:.2f} for {user.name}.",
            {"score": 0.5, "user": User()},
            "Score 0.50 for Ada.",
        ),
        # Not a str.format template for these names: only the given names change.
        ("Use {items[0]} in {language}.", {"language": "French"}, "Use {items[0]} in French."),
        (
            "Greet {user.name} in {language}.",
            {"language": "French"},
            "Greet {user.name} in French.",
        ),
        (
            'Answer {"a": {"b": 1}} in {language}.',
            {"language": "French"},
            'Answer {"a": {"b": 1}} in French.',
        ),
        (
            "Keep {{this}} and {that}, {language}.",
            {"language": "French"},
            "Keep {{this}} and {that}, French.",
        ),
        (
            "Braces { and } alone, {language}!",
            {"language": "French"},
            "Braces { and } alone, French!",
        ),
        (
            "Nested {x{y}z} and {}, {language}",
            {"language": "French"},
            "Nested {x{y}z} and {}, French",
        ),
        (
            'Like {\n  "lang": "{language}"\n}',
            {"language": "French"},
            'Like {\n  "lang": "French"\n}',
        ),
        # No parameters: the docstring is the prompt, exactly as written.
        ("Keep {{this}} and {that}.", None, "Keep {{this}} and {that}."),
    ],
)
async def test_template_params_fill_only_the_names_given(
    server: LLMTestServer, make_llm: MakeLLM, doc: str, params: dict[str, Any] | None, system: str
) -> None:
    async def task(text: str) -> str:
        pass

    task.__doc__ = doc
    fn = llm_function(llm_interface=make_llm())(task)
    await fn("x", _template_params=params)  # type: ignore[call-arg]
    assert messages_of(server.requests[0])[0][1] == system + "\n\nReply with the result only."


async def test_a_given_name_that_cannot_be_filled_is_a_clear_error(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm())
    async def greet(text: str) -> str:
        """Greet {user.email} about {"a": 1}."""

    with pytest.raises(ConfigError, match=r"\{user\.email\}.*AttributeError"):
        await greet("x", _template_params={"user": User()})  # type: ignore[call-arg]
    assert server.requests == []


async def test_custom_prompt_templates_keep_their_other_braces(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(
        llm_interface=make_llm(),
        system_prompt_template='{function_description}\nAnswer like {"ok": true}.',
        user_prompt_template="Input ({{raw}}):\n{parameters}",
    )
    async def check(text: str) -> str:
        """Check the text."""

    await check("fine")
    (_, system), (_, user) = messages_of(server.requests[0])
    assert system == 'Check the text.\nAnswer like {"ok": true}.'
    assert user == "Input ({raw}):\ntext: fine"


async def test_invalid_reply_is_repaired_once(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @llm_function(llm_interface=make_llm())
    async def analyze(text: str) -> Analysis:
        """Analyze."""

    server.push(
        Reply(text='{"sentiment": "ecstatic", "keywords": []}'),
        Reply(text='```json\n{"sentiment": "positive", "keywords": ["a"]}\n```'),
    )
    assert await analyze("x") == Analysis("positive", ["a"])
    repair = messages_of(server.requests[1])
    assert repair[-2] == ("assistant", '{"sentiment": "ecstatic", "keywords": []}')
    assert repair[-1][0] == "user" and "ecstatic" in repair[-1][1]


async def test_invalid_twice_raises_with_the_raw_text(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    @llm_function(llm_interface=make_llm())
    async def count(text: str) -> int:
        """Count the words."""

    server.push(Reply(text="three"), Reply(text="I think it is three"))
    with pytest.raises(OutputValidationError, match="does not match") as info:
        await count("a b c")
    assert info.value.raw == "I think it is three"
    assert len(server.requests) == 2


async def test_provider_without_json_schema_falls_back_to_the_prompt(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    def reject_schema(req: RecordedRequest) -> Error | None:
        if "response_format" in req.json:
            return Error(status=400, message="response_format json_schema is not supported")
        return None

    server.handler = reject_schema
    llm = make_llm()

    @llm_function(llm_interface=llm)
    async def point(text: str) -> Point:
        """Extract the point."""

    server.default = Reply(text='{"x": 1, "y": 2}')
    assert await point("one, two") == Point(1.0, 2.0)
    assert await point("again") == Point(1.0, 2.0)
    first, fallback, remembered = server.requests
    assert "response_format" in first.json
    assert "response_format" not in fallback.json
    assert '"x"' in messages_of(fallback)[0][1]  # the schema went into the prompt
    assert "response_format" not in remembered.json
    assert llm.json_schema_unsupported


async def test_other_400s_are_not_mistaken_for_a_schema_problem(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    from llmplug import BadRequestError

    @llm_function(llm_interface=make_llm())
    async def point(text: str) -> Point:
        """Extract the point."""

    server.push(Error(status=400, message="model not allowed"))
    with pytest.raises(BadRequestError, match="model not allowed"):
        await point("x")
    assert len(server.requests) == 1


async def test_params_call_over_decorator_over_api_params(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    llm = make_llm(api_params={"temperature": 0.9, "top_p": 0.5, "seed": 1})

    @llm_function(llm_interface=llm, temperature=0.5, top_p=0.4)
    async def f(x: int) -> str:
        """Do."""

    await f(1, _llm_params={"temperature": 0.1})  # type: ignore[call-arg]
    body = server.requests[0].json
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.1, 0.4, 1)


async def test_tools_inside_a_function(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @tool
    async def lookup(city: str) -> dict[str, int]:
        """Look up a city's population."""
        return {"population": 2_100_000 if city == "Paris" else 0}

    @llm_function(llm_interface=make_llm(), toolkit=[lookup])
    async def population(city: str) -> int:
        """How many people live in the city?"""

    server.push(
        Reply(tool_calls=[ToolCallReply(name="lookup", arguments={"city": "Paris"})]),
        Reply(text='{"result": 2100000}'),
    )
    assert await population("Paris") == 2_100_000
    tool_msg = server.requests[1].json["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"] == '{"population":2100000}'


async def test_max_tool_calls_is_a_clear_error(server: LLMTestServer, make_llm: MakeLLM) -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    @llm_function(llm_interface=make_llm(), toolkit=[ping], max_tool_calls=2)
    async def loop() -> str:
        """Keep pinging."""

    server.default = Reply(tool_calls=[ToolCallReply(name="ping", arguments={})])
    with pytest.raises(ToolLoopError, match="max_tool_calls=2"):
        await loop()
    assert len(server.requests) == 3


def test_sync_function_blocks_and_returns(server: LLMTestServer) -> None:
    from llmplug import APIKeyPool

    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t"), "m", server.base_url)

    @llm_function(llm_interface=llm)
    def shout(text: str) -> str:
        """Shout the text."""

    server.push(Reply(text="HELLO"), Reply(text="WORLD"))
    assert shout("hello") == "HELLO"
    assert shout("world") == "WORLD"  # a second event loop, a second client: still works


async def test_sync_function_inside_a_loop_says_to_use_async(make_llm: MakeLLM) -> None:
    @llm_function(llm_interface=make_llm())
    def shout(text: str) -> str:
        """Shout the text."""

    with pytest.raises(RuntimeError, match="async def"):
        shout("hello")


def test_a_function_needs_a_docstring() -> None:
    from llmplug import APIKeyPool

    llm = OpenAICompatible(APIKeyPool(["sk-x"], "t"), "m", "http://127.0.0.1:9/v1")
    with pytest.raises(TypeError, match="needs a docstring"):

        @llm_function(llm_interface=llm)
        async def nothing(x: int) -> str: ...


async def test_pydantic_return_type(server: LLMTestServer, make_llm: MakeLLM) -> None:
    pydantic = pytest.importorskip("pydantic")

    class User(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        name: str
        age: int

    fn = returning(make_llm(), User, "Extract the user.")
    server.push(Reply(text='{"name": "Ada", "age": 36}'))
    user = await fn("Ada, 36")
    assert (user.name, user.age) == ("Ada", 36)
    assert schema_of(server.requests[0])["properties"]["age"]["type"] == "integer"
