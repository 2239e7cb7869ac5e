"""@tool: the spec the model sees (schema, descriptions, wire shape) and running its calls."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import threading
from collections.abc import Callable
from typing import Any, Literal, Optional, TypedDict

import msgspec
import pydantic
import pytest

from llmplug import (
    ConfigError,
    LLMInterface,
    OpenAIResponsesCompatible,
    ToolCall,
    ToolFunction,
    tool,
)
from llmplug._decorators._tool import Toolkit
from llmplug.testing import LLMTestServer, Reply

MakeLLM = Callable[..., LLMInterface]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(msgspec.Struct):
    x: int
    y: int = 0


@dataclasses.dataclass
class Box:
    width: float
    height: float


class Place(TypedDict):
    city: str
    country: str


class Route(msgspec.Struct):
    start: Point
    stops: list[Point]


class Opaque:
    """A plain class: no JSON schema for it."""


class Weather(pydantic.BaseModel):
    city: str
    degrees: int


@tool(name="get_weather", description="Get the weather for a city")
async def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, str]:
    """Args:
    city: the city's name
    """
    return {"city": city, "unit": unit}


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def assert_self_contained(schema: dict[str, Any]) -> None:
    for ref in refs(schema):
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema.get("$defs", {}), ref


def call(name: str, arguments: str, id: str = "call_1") -> ToolCall:
    return ToolCall(id=id, name=name, arguments=arguments)


async def test_tool_keeps_working_as_a_function() -> None:
    @tool
    def add(a: int, b: int = 2) -> int:
        """Add two numbers.

        Use it for sums only.

        Args:
            a: the first number
        """
        return a + b

    assert add(1) == 3  # a sync tool stays a plain sync call
    assert (add.spec.name, add.spec.description) == (
        "add",
        "Add two numbers.\n\nUse it for sums only.",
    )
    assert isinstance(get_weather, ToolFunction)
    assert get_weather.spec.name == "get_weather"
    assert get_weather.spec.description == "Get the weather for a city"
    assert await get_weather("Paris", unit="F") == {"city": "Paris", "unit": "F"}


def test_required_defaults_optional_literal_enum_list_and_dict_parameters() -> None:
    @tool
    def f(
        a: Optional[str],  # noqa: UP045
        b: int | None,
        unit: Literal["C", "F"],
        limit: int = 10,
        color: Color = Color.RED,
        tags: list[str] | None = None,
        counts: dict[str, int] | None = None,
    ) -> None: ...

    schema = f.spec.parameters
    props = schema["properties"]
    assert props["a"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["b"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}
    assert props["unit"] == {"enum": ["C", "F"]}
    assert props["limit"] == {"type": "integer", "default": 10}
    assert props["color"]["default"] == "red"
    assert set(schema["$defs"]["Color"]["enum"]) == {"red", "blue"}
    assert {"type": "array", "items": {"type": "string"}} in props["tags"]["anyOf"]
    assert {"type": "object", "additionalProperties": {"type": "integer"}} in props["counts"][
        "anyOf"
    ]
    assert schema["required"] == ["a", "b", "unit"]
    assert_self_contained(schema)


def test_structs_dataclasses_and_typeddicts_go_under_defs() -> None:
    @tool
    def plan(route: Route, box: Box, place: Place) -> None: ...

    schema = plan.spec.parameters
    assert schema["properties"]["route"] == {"$ref": "#/$defs/Route"}
    assert schema["properties"]["box"] == {"$ref": "#/$defs/Box"}
    assert schema["properties"]["place"] == {"$ref": "#/$defs/Place"}
    defs = schema["$defs"]
    assert defs["Point"]["required"] == ["x"]
    assert defs["Route"]["properties"]["stops"]["items"] == {"$ref": "#/$defs/Point"}
    assert defs["Box"]["properties"]["width"] == {"type": "number"}
    assert defs["Place"]["required"] == ["city", "country"]
    assert_self_contained(schema)


GOOGLE = """Get the forecast.

    Args:
        city (str): The city's name,
            for example Paris.
        days: How many days.

    Returns:
        The forecast, as text.
    """
SPHINX = """Get the forecast.

    :param city: The city's name,
        for example Paris.
    :type city: str
    :param int days: How many days.
    :returns: The forecast.
    """
NUMPY = """Get the forecast.

    Parameters
    ----------
    city : str
        The city's name,
        for example Paris.
    days : int, optional
        How many days.

    Returns
    -------
    str
    """
# A description line that looks like an argument does not end the first argument early.
TRICKY = """Get the forecast.
    city: any city on Earth

    Args:
        city: The city's name,
            for example Paris.
        days: How many days.
    """


@pytest.mark.parametrize(
    "doc", [GOOGLE, SPHINX, NUMPY, TRICKY], ids=["google", "sphinx", "numpy", "tricky"]
)
def test_parameter_descriptions_from_the_docstring(doc: str) -> None:
    def forecast(city: str, days: int = 1) -> None: ...

    forecast.__doc__ = doc
    spec = tool(forecast).spec
    assert spec.description.startswith("Get the forecast.")
    props = spec.parameters["properties"]
    assert props["city"]["description"] == "The city's name, for example Paris."
    assert props["days"]["description"] == "How many days."


def test_star_args_and_kwargs_are_rejected() -> None:
    def with_args(*values: int) -> None: ...

    def with_kwargs(**options: str) -> None: ...

    for fn in (with_args, with_kwargs):
        with pytest.raises(ConfigError, match=r"\*args and \*\*kwargs"):
            tool(fn)


def test_unsupported_parameter_type_is_a_config_error() -> None:
    def f(x: Opaque) -> None: ...

    with pytest.raises(ConfigError, match=r"'f'.*not supported"):
        tool(f)


@pytest.mark.parametrize("responses", [False, True])
async def test_the_spec_is_what_goes_over_the_wire(
    server: LLMTestServer, make_llm: MakeLLM, responses: bool
) -> None:
    server.push(Reply(text="ok"))
    llm = make_llm(interface=OpenAIResponsesCompatible) if responses else make_llm()
    tools: list[Any] = [get_weather]  # ToolsInput's annotation does not name ToolFunction yet
    await llm.chat("hi", tools=tools)
    function = {
        "name": "get_weather",
        "description": "Get the weather for a city",
        "parameters": get_weather.spec.parameters,
    }
    shape: dict[str, Any] = function if responses else {"function": function}
    assert server.requests[0].json["tools"] == [{"type": "function", **shape}]
    city = get_weather.spec.parameters["properties"]["city"]
    assert city == {"type": "string", "description": "the city's name"}


# -- running calls -------------------------------------------------------------------------------


async def test_run_converts_arguments_to_the_annotated_types() -> None:
    seen: list[Any] = []

    @tool
    def plan(route: Route, box: Box, color: Color, place: Place) -> str:
        seen.extend([route, box, color, place])
        return "planned"

    arguments = (
        '{"route": {"start": {"x": 1}, "stops": [{"x": 2, "y": 3}]}, "box": {"width": 1,'
        ' "height": 2.5}, "color": "blue", "place": {"city": "Oslo", "country": "NO"}}'
    )
    result = await plan.run(call("plan", arguments, id="c7"))
    assert (result.content, result.is_error, result.call.id) == ("planned", False, "c7")
    assert seen == [
        Route(start=Point(1), stops=[Point(2, 3)]),
        Box(1.0, 2.5),
        Color.BLUE,
        {"city": "Oslo", "country": "NO"},
    ]


async def test_positional_only_parameters_are_passed_by_position() -> None:
    @tool
    def add(a: int, /, b: int) -> int:
        return a + b

    result = await add.run(call("add", '{"a": 1, "b": 2}'))
    assert (result.content, result.is_error) == ("3", False)


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"city": 3}', "Expected `str`, got `int` - at `$.city`"),
        ('{"unit": "C"}', "missing required field `city`"),
        ('{"city": "Oslo", "zip": "0150"}', "unknown field `zip`"),
        ('{"city": "Oslo", "unit": "K"}', "Invalid enum value 'K'"),
        ('{"city": Oslo}', "JSON is malformed"),
    ],
)
async def test_invalid_arguments_become_an_error_result(arguments: str, problem: str) -> None:
    ran: list[str] = []

    @tool
    async def weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        ran.append(city)
        return "sunny"

    result = await weather.run(call("weather", arguments))
    assert result.is_error
    assert "invalid arguments for weather" in result.content
    assert problem in result.content
    assert ran == []


@pytest.mark.parametrize("is_async", [True, False])
async def test_a_tool_that_raises_becomes_an_error_result(is_async: bool) -> None:
    def sync_fails(city: str) -> str:
        raise LookupError(f"no station in {city}")

    async def async_fails(city: str) -> str:
        raise LookupError(f"no station in {city}")

    fails = tool(name="station")(async_fails if is_async else sync_fails)
    result = await fails.run(call("station", '{"city": "Oslo"}'))
    assert result.is_error
    assert result.content == "Error: station raised LookupError: no station in Oslo"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain text, not JSON", "plain text, not JSON"),
        ({"a": [1, 2]}, '{"a":[1,2]}'),
        ([1, "two"], '[1,"two"]'),
        (Point(1, 2), '{"x":1,"y":2}'),
        (Box(1.5, 2.0), '{"width":1.5,"height":2.0}'),
        (Weather(city="Oslo", degrees=-3), '{"city":"Oslo","degrees":-3}'),
        (42, "42"),
    ],
)
async def test_results_are_sent_as_text(value: Any, text: str) -> None:
    @tool
    def give() -> Any:
        return value

    result = await give.run(call("give", ""))
    assert (result.content, result.is_error) == (text, False)


async def test_async_calls_of_one_turn_run_concurrently_and_keep_their_order() -> None:
    first_started, second_started = asyncio.Event(), asyncio.Event()

    @tool
    async def first() -> str:
        first_started.set()
        await second_started.wait()  # never set if the calls ran one after the other
        return "first"

    @tool
    async def second() -> str:
        second_started.set()
        await first_started.wait()
        return "second"

    # "second" finishes first and "nope" is unknown: the results still follow the calls.
    kit = Toolkit([first, second])
    calls = [call("first", "", id="a"), call("nope", "", id="b"), call("second", "", id="c")]
    results = await asyncio.wait_for(kit.run_all(calls), timeout=5)
    assert [(r.call.id, r.content) for r in results[::2]] == [("a", "first"), ("c", "second")]
    assert [r.is_error for r in results] == [False, True, False]
    assert results[1].content == "Error: there is no tool named 'nope' (tools: first, second)"


async def test_sync_calls_of_one_turn_run_in_threads_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)  # breaks unless both tools wait at once

    @tool
    def left() -> str:
        barrier.wait()
        return "left"

    @tool
    def right() -> str:
        barrier.wait()
        return "right"

    results = await Toolkit([left, right]).run_all([call("right", ""), call("left", "")])
    assert [(r.content, r.is_error) for r in results] == [("right", False), ("left", False)]


def test_toolkit_accepts_plain_functions_and_rejects_clashes() -> None:
    def lookup(q: str) -> str:
        """Look it up."""
        return q

    specs = Toolkit([lookup]).specs
    assert specs is not None
    assert [(t.name, t.description) for t in specs] == [("lookup", "Look it up.")]
    with pytest.raises(ConfigError, match="two tools are named 'lookup'"):
        Toolkit([lookup, tool(lookup)])
    with pytest.raises(ConfigError, match="must be functions"):
        Toolkit(["lookup"])
