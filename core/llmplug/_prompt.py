"""Turning a decorated function's docstring and arguments into messages."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["fill_template", "format_arguments", "render_value", "split_call_options"]


class _Keep(dict[str, Any]):
    """Leaves unknown ``{placeholders}`` as they are, so a docstring with a JSON example in
    braces still works."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill_template(template: str, params: Mapping[str, Any] | None) -> str:
    if not params:
        return template
    try:
        return template.format_map(_Keep(params))
    except (ValueError, IndexError):
        # Braces that are not placeholders at all: fill the named ones one by one.
        for k, v in params.items():
            template = template.replace("{" + k + "}", str(v))
        return template


def render_value(value: Any) -> str:
    """Text for the model: a str as it is, anything else as JSON (a pydantic model as its
    JSON, an object msgspec cannot encode as its str()). A value nested too deeply to print
    raises ValueError, not RecursionError."""
    if isinstance(value, str):
        return value
    try:
        try:
            return msgspec.json.encode(value).decode()
        except TypeError:
            dump = getattr(value, "model_dump_json", None)
            return str(dump()) if callable(dump) else str(value)
    except RecursionError:
        raise ValueError(f"a {type(value).__name__} nested too deeply to show as text") from None


def format_arguments(bound: inspect.BoundArguments, skip: frozenset[str] = frozenset()) -> str:
    """``name: value`` lines (strings as they are, everything else as JSON)."""
    lines = []
    for name, value in bound.arguments.items():
        if name in skip:
            continue
        try:
            text = render_value(value)
        except ValueError as exc:
            raise ValueError(f"argument {name!r}: {exc}") from None
        lines.append(f"{name}: {text}" if "\n" not in text else f"{name}:\n{text}")
    return "\n".join(lines)


def split_call_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Pop the reserved ``_template_params`` and ``_llm_params`` from a decorated call."""
    template = kwargs.pop("_template_params", None)
    params = kwargs.pop("_llm_params", None) or {}
    return template, dict(params)
