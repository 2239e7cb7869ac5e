"""SimpleLLMFunc's text for the ``{parameters_description}`` and ``{return_type_description}``
placeholders of ``llm_function``'s prompt templates."""

from __future__ import annotations

import typing
from typing import Any

from ._schema import OutputType, is_pydantic_model

__all__ = ["parameters_description", "return_type_description"]


def type_description(tp: Any) -> str:
    """``str(tp)`` (``<class 'int'>``), ``List[...]`` and ``Dict[..., ...]`` spelled out, a
    pydantic model's fields listed."""
    if is_pydantic_model(tp):
        schema = tp.model_json_schema()
        required = set(schema.get("required", ()))
        lines = [
            f"  - {name} ({info.get('type', 'unknown')}, "
            f"{'required' if name in required else 'optional'}): {info.get('description', '')}"
            for name, info in schema.get("properties", {}).items()
        ]
        return f"{tp.__name__} (pydantic model) with fields:\n" + "\n".join(lines)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list:
        return f"List[{type_description(args[0])}]" if args else "List"
    if origin is dict:
        return f"Dict[{type_description(args[0])}, {type_description(args[1])}]" if args else "Dict"
    return str(tp)


def parameters_description(hints: dict[str, Any]) -> str:
    """One ``  - name: type`` line per annotated parameter."""
    return "\n".join(f"  - {n}: {type_description(t)}" for n, t in hints.items() if n != "return")


def return_type_description(out: OutputType, tp: Any) -> str:
    """A scalar's type; for a structured type, the JSON schema the reply must match (where
    SimpleLLMFunc gives an XML schema: llmplug decodes JSON)."""
    if tp in (str, int, float, bool, type(None)):
        return str(tp)
    return out.describe() or type_description(tp)
