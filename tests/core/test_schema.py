"""OutputType: the schema a return annotation asks for, and decoding the model's reply back."""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any, Literal, TypedDict

import msgspec
import pydantic
import pytest

from llmplug._decorators._schema import OutputType


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Person(msgspec.Struct):
    name: str
    age: int


class Team(msgspec.Struct):
    lead: Person
    members: list[Person]


class WithDefault(msgspec.Struct):
    name: str
    age: int = 0


class WithDict(msgspec.Struct):
    name: str
    scores: dict[str, int]


class Node(msgspec.Struct):
    value: int
    children: list[Node]


class Stop(msgspec.Struct):  # its name is a prefix of the StopTime it refers to
    name: str
    times: list[StopTime]


class StopTime(msgspec.Struct):
    hour: int


@dataclasses.dataclass
class Box:
    width: float
    height: float


class Place(TypedDict):
    city: str
    country: str


class Address(pydantic.BaseModel):
    city: str


class Customer(pydantic.BaseModel):
    name: str
    age: int
    address: Address


class Draft(pydantic.BaseModel):
    title: str
    words: int = 0


class Plain:
    """Not something msgspec or pydantic can describe."""


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def objects(node: Any) -> list[dict[str, Any]]:
    """Every object schema with properties, at any depth."""
    if isinstance(node, list):
        return [o for v in node for o in objects(v)]
    if not isinstance(node, dict):
        return []
    own = [node] if node.get("type") == "object" and "properties" in node else []
    return own + [o for v in node.values() for o in objects(v)]


def assert_self_contained(schema: dict[str, Any]) -> None:
    for ref in refs(schema):
        assert ref.removeprefix("#/$defs/") in schema.get("$defs", {}), ref


@pytest.mark.parametrize("tp", [str, Any])
def test_text_needs_no_schema(tp: Any) -> None:
    out = OutputType(tp)
    assert out.is_text
    assert out.schema is None
    assert out.strict is False
    assert out.describe() == ""
    assert out.decode('```json\n{"a": 1}\n```') == '```json\n{"a": 1}\n```'


def test_none_needs_no_schema_and_decodes_to_none() -> None:
    out = OutputType(None)
    assert (out.is_text, out.is_none, out.schema) == (False, True, None)
    assert out.decode("anything at all") is None


@pytest.mark.parametrize(
    ("tp", "inner", "reply", "value"),
    [
        (int, {"type": "integer"}, "3", 3),
        (float, {"type": "number"}, "2.5", 2.5),
        (bool, {"type": "boolean"}, "true", True),
        (Literal["no", "yes"], {"enum": ["no", "yes"]}, '"no"', "no"),
        (list[int], {"type": "array", "items": {"type": "integer"}}, "[1, 2]", [1, 2]),
    ],
)
def test_non_objects_are_wrapped_in_result(tp: Any, inner: Any, reply: str, value: Any) -> None:
    out = OutputType(tp)
    assert not out.is_text
    assert out.schema == {
        "type": "object",
        "properties": {"result": inner},
        "required": ["result"],
        "additionalProperties": False,
    }
    assert out.strict is True
    assert out.decode('{"result": ' + reply + "}") == value


def test_an_enum_is_wrapped_with_its_definition() -> None:
    out = OutputType(Color)
    assert out.schema is not None
    assert out.schema["properties"] == {"result": {"$ref": "#/$defs/Color"}}
    assert set(out.schema["$defs"]["Color"]["enum"]) == {"red", "blue"}
    assert out.strict is True
    assert out.decode('{"result": "blue"}') is Color.BLUE


def test_a_dict_is_wrapped_and_cannot_be_strict() -> None:
    out = OutputType(dict[str, int])
    assert out.schema is not None
    assert out.schema["properties"]["result"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert out.strict is False  # a free-form dict cannot be closed
    assert out.decode('{"result": {"a": 1}}') == {"a": 1}


def test_a_struct_is_the_schema_itself() -> None:
    out = OutputType(Person)
    assert out.schema == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    assert out.strict is True
    assert out.decode('{"name": "Ada", "age": 36}') == Person("Ada", 36)


def test_nested_structs_are_closed_everywhere_and_self_contained() -> None:
    out = OutputType(Team)
    assert out.schema is not None
    assert out.schema["properties"]["lead"] == {"$ref": "#/$defs/Person"}
    assert set(out.schema["$defs"]) == {"Person"}
    assert len(objects(out.schema)) == 2
    assert all(o["additionalProperties"] is False for o in objects(out.schema))
    assert_self_contained(out.schema)
    assert out.strict is True
    reply = '{"lead": {"name": "A", "age": 1}, "members": [{"name": "B", "age": 2}]}'
    assert out.decode(reply) == Team(Person("A", 1), [Person("B", 2)])


def test_a_recursive_struct_keeps_its_own_definition() -> None:
    out = OutputType(Node)
    assert out.schema is not None
    assert out.schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert_self_contained(out.schema)
    assert out.decode('{"value": 1, "children": [{"value": 2, "children": []}]}') == Node(
        1, [Node(2, [])]
    )


def test_the_root_is_not_repeated_under_defs_when_a_name_only_shares_a_prefix() -> None:
    out = OutputType(Stop)
    assert out.schema is not None
    assert set(out.schema["$defs"]) == {"StopTime"}
    assert_self_contained(out.schema)


@pytest.mark.parametrize("tp", [WithDefault, WithDict])
def test_strict_only_when_every_property_is_required_and_no_dict_is_free(tp: Any) -> None:
    out = OutputType(tp)
    assert out.strict is False
    assert out.schema is not None
    assert out.schema["additionalProperties"] is False


def test_a_dataclass_and_a_typeddict() -> None:
    box = OutputType(Box)
    assert box.schema is not None
    assert box.schema["required"] == ["width", "height"]
    assert box.strict is True
    assert box.decode('{"width": 1, "height": 2.5}') == Box(1.0, 2.5)
    place = OutputType(Place)
    assert place.schema is not None
    assert place.schema["properties"] == {"city": {"type": "string"}, "country": {"type": "string"}}
    assert place.decode('{"city": "Oslo", "country": "NO"}') == {"city": "Oslo", "country": "NO"}


def test_a_pydantic_model_uses_its_own_schema_and_validation() -> None:
    out = OutputType(Customer)
    assert out.schema is not None
    own = Customer.model_json_schema()
    assert out.schema["properties"] == own["properties"]
    assert out.schema["required"] == ["name", "age", "address"]
    assert set(out.schema["$defs"]) == {"Address"}
    assert all(o["additionalProperties"] is False for o in objects(out.schema))
    assert_self_contained(out.schema)
    assert out.strict is True
    assert "additionalProperties" not in Customer.model_json_schema()  # pydantic's is untouched
    got = out.decode('{"name": "Ada", "age": "36", "address": {"city": "London"}}')
    assert got == Customer(name="Ada", age=36, address=Address(city="London"))
    assert OutputType(Draft).strict is False


def test_response_format_shape() -> None:
    out = OutputType(Person)
    assert out.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "Person", "schema": out.schema, "strict": True},
    }
    fmt = OutputType(list[int]).response_format()
    assert fmt["json_schema"]["name"] == "list"
    assert fmt["json_schema"]["strict"] is True
    assert OutputType(WithDict).response_format()["json_schema"]["strict"] is False


def test_describe_puts_the_schema_in_the_prompt() -> None:
    out = OutputType(Person)
    assert out.schema is not None
    text = out.describe()
    assert "JSON" in text
    assert msgspec.json.encode(out.schema).decode() in text


@pytest.mark.parametrize(
    "reply",
    [
        '```json\n{"name": "Ada", "age": 36}\n```',
        '```\n{"name": "Ada", "age": 36}\n```',
        '  ```json\n{"name": "Ada", "age": 36}```  \n',
        '\n{"name": "Ada", "age": 36}\n',
    ],
)
def test_decode_accepts_code_fences_and_whitespace(reply: str) -> None:
    assert OutputType(Person).decode(reply) == Person("Ada", 36)


@pytest.mark.parametrize(
    ("tp", "reply", "reason"),
    [
        (Person, '{"name": "Ada", "age": "old"}', "Expected `int`, got `str` - at `$.age`"),
        (Person, '{"name": "Ada"}', "Object missing required field `age`"),
        (int, '{"result": "three"}', "Expected `int`, got `str` - at `$.result`"),
        (int, '"three"', "Expected `int`, got `str`"),
        (int, "three", "Expected `int`, got `str`"),
        (Color, '"green"', "Invalid enum value 'green'"),
        (Literal["yes", "no"], '{"result": "maybe"}', "Invalid enum value 'maybe'"),
        (Person, "Ada is 36", "JSON is malformed"),
        (Customer, '{"name": "Ada", "age": "old", "address": {"city": "L"}}', "valid integer"),
        (Customer, '{"name": "Ada", "age": 3}', "address\n  Field required"),
        (Customer, "not json", "Invalid JSON"),
    ],
)
def test_decode_raises_value_error_with_the_reason(tp: Any, reply: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        OutputType(tp).decode(reply)


@pytest.mark.parametrize(
    ("tp", "reply", "value"),
    [
        (int, "42", 42),
        (float, "2.5", 2.5),
        (bool, "false", False),
        (Color, '"blue"', Color.BLUE),
        (Color, "blue", Color.BLUE),
        (Literal["yes", "no"], "no", "no"),
        (list[str], '["a", "b"]', ["a", "b"]),
        (int | None, "null", None),
        (dict[str, int], '{"a": 1}', {"a": 1}),
        (dict[str, int], '{"result": 1}', {"result": 1}),
        (dict[str, int], '{"result": {"a": 1}}', {"a": 1}),
        (str | None, "just words", "just words"),
    ],
)
def test_a_bare_value_is_accepted_where_the_wrapper_was_asked_for(
    tp: Any, reply: str, value: Any
) -> None:
    # Servers that ignore response_format answer with the value itself, often unquoted.
    assert OutputType(tp).decode(reply) == value


def test_unsupported_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match=r"return type .*Plain.* is not supported"):
        OutputType(Plain)
    with pytest.raises(TypeError, match="is not supported"):
        OutputType(list[Plain])
