"""Python types to JSON schemas and back: for tool parameters and structured output.

msgspec covers builtins, Literal, Enum, Optional, lists, dicts, Structs, dataclasses and
TypedDicts; pydantic models (if pydantic is installed) use pydantic's own schema and validator."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["OutputType", "is_pydantic_model", "parameters_schema"]


def is_pydantic_model(tp: Any) -> bool:
    return (
        isinstance(tp, type)
        and hasattr(tp, "model_json_schema")
        and hasattr(tp, "model_validate_json")
    )


def _inline_root(schemas: list[dict[str, Any]], components: dict[str, Any]) -> dict[str, Any]:
    root = schemas[0]
    ref = root.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.rsplit("/", 1)[1]
        root = components[name]
        if not _refers_to(root, name, components):
            components = {k: v for k, v in components.items() if k != name}
    root = dict(root)
    if components:
        root["$defs"] = components
    return root


def _refers_to(node: Any, name: str, components: dict[str, Any]) -> bool:
    target = f'"#/$defs/{name}"'  # quoted: "#/$defs/Point" is not "#/$defs/PointPair"
    text = msgspec.json.encode(node) + msgspec.json.encode(
        {k: v for k, v in components.items() if k != name}
    )
    return target.encode() in text


def schema_of(tp: Any) -> dict[str, Any]:
    """A self-contained JSON schema for ``tp``: the root inline, shared parts under ``$defs``."""
    if is_pydantic_model(tp):
        return dict(tp.model_json_schema())
    schemas, components = msgspec.json.schema_components([tp], ref_template="#/$defs/{name}")
    return _inline_root(list(schemas), dict(components))


def parameters_schema(
    fields: list[tuple[str, Any, Any]], descriptions: dict[str, str]
) -> tuple[dict[str, Any], type[msgspec.Struct]]:
    """The schema of a function's parameters, and the Struct that validates arguments.

    ``fields`` are (name, annotation, default or ``msgspec.NODEFAULT``)."""
    spec = [(n, a, d) if d is not msgspec.NODEFAULT else (n, a) for n, a, d in fields]
    args_type = msgspec.defstruct("Arguments", spec, forbid_unknown_fields=True, kw_only=True)
    schema = schema_of(args_type)
    schema.pop("title", None)
    props = schema.setdefault("properties", {})
    for name, text in descriptions.items():
        if name in props:
            props[name] = {**props[name], "description": text}
    return schema, args_type


def _strictify(node: Any) -> bool:
    """Make every object schema closed; True if every property is required (what OpenAI's
    strict mode needs). Mutates ``node``."""
    ok = True
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
            if set(node.get("required", ())) != set(node["properties"]):
                ok = False
        elif node.get("type") == "object":
            ok = False  # free-form dicts cannot be strict
        for v in node.values():
            ok = _strictify(v) and ok
    elif isinstance(node, list):
        for v in node:
            ok = _strictify(v) and ok
    return ok


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n?```\s*$", re.S)


class _Unwrap:
    """Decodes ``{"result": value}``, or the bare value: many OpenAI-compatible servers ignore
    ``response_format`` and answer ``42`` or ``"blue"``, or even ``blue`` unquoted; refusing
    those would cost a repair call for an answer that was right."""

    __slots__ = ("bare", "wrapped")

    def __init__(self, wrapped: msgspec.json.Decoder[Any], bare: msgspec.json.Decoder[Any]):
        self.wrapped = wrapped
        self.bare = bare

    def __call__(self, body: bytes) -> Any:
        try:
            return self.wrapped.decode(body).result
        except msgspec.ValidationError as exc:
            first: Exception = exc
        except msgspec.DecodeError as exc:
            first = exc
            body = msgspec.json.encode(body.decode())  # not JSON: the text as a JSON string
        try:
            return self.bare.decode(body)
        except msgspec.ValidationError as exc:
            if not (isinstance(first, msgspec.ValidationError) and _is_wrapped(body)):
                raise
            # The repair turn shows the model the error of the shape it answered in.
            raise first from exc


def _is_wrapped(body: bytes) -> bool:
    try:
        value = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False
    return isinstance(value, dict) and "result" in value


class OutputType:
    """How a function's return annotation is asked for and decoded."""

    def __init__(self, tp: Any) -> None:
        self.type = tp
        self.is_text = tp is str or tp is Any
        self.is_none = tp is None or tp is type(None)
        self._decode: Callable[[bytes], Any]
        if self.is_text or self.is_none:
            self.schema: dict[str, Any] | None = None
            self.strict = False
            return
        if is_pydantic_model(tp):
            schema = schema_of(tp)
            self._decode = tp.model_validate_json
        else:
            try:
                root = schema_of(tp)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"return type {tp!r} is not supported: {exc}") from None
            if root.get("type") == "object" and "properties" in root:
                schema = root
                self._decode = msgspec.json.Decoder(tp).decode
            else:
                # Structured output needs an object at the root: wrap other types.
                wrapper = msgspec.defstruct("Result", [("result", tp)])
                schema = schema_of(wrapper)
                self._decode = _Unwrap(msgspec.json.Decoder(wrapper), msgspec.json.Decoder(tp))
        schema = copy.deepcopy(schema)
        schema.pop("title", None)
        self.strict = _strictify(schema)
        self.schema = schema

    @property
    def name(self) -> str:
        n = getattr(self.type, "__name__", None) or "result"
        return re.sub(r"[^a-zA-Z0-9_-]", "_", n)[:64]

    def response_format(self) -> dict[str, Any]:
        """The Chat ``response_format``; the Responses plugin moves it to ``text.format``."""
        assert self.schema is not None
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema, "strict": self.strict},
        }

    def describe(self) -> str:
        """A prompt line telling the model the shape to reply in (for the JSON-in-prompt path)."""
        if self.schema is None:
            return ""
        return (
            "Reply with only a JSON value (no prose, no code fences) that matches this JSON "
            "schema:\n" + msgspec.json.encode(self.schema).decode()
        )

    def decode(self, text: str) -> Any:
        """Decode and validate the model's reply; raises ValueError with the reason."""
        if self.is_none:
            return None
        if self.is_text:
            return text
        m = _FENCE.match(text)
        body = (m.group(1) if m else text).strip()
        try:
            return self._decode(body.encode())
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ValueError(str(exc)) from None
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValueError(str(exc)) from None
