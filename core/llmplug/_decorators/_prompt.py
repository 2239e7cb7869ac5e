"""Turning a decorated function's docstring and arguments into messages."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from llmplug._vocab._errors import ConfigError

__all__ = ["fill_template", "format_arguments", "render_value", "split_call_options"]


#: One token of a template that is not a str.format template: an escaped brace (kept as it is)
#: or a replacement field ``{name}``, ``{name.attr}``, ``{name[key]}``, ``{name!r}``,
#: ``{name:spec}`` (filled only when ``name`` is given).
_TOKEN = re.compile(
    r"\{\{|\}\}|\{([^\W\d]\w*)(?:\.[^\W\d]\w*|\[[^\[\]{}]*\])*(?:![rsa])?(?::[^{}]*)?\}"
)


def fill_template(template: str, params: Mapping[str, Any] | None) -> str:
    """Fill a docstring's ``{placeholders}`` from ``params`` (``_template_params``).

    Without params the template is returned as written. A template written for ``str.format``
    (every field a given name, literal braces doubled) gives exactly what ``str.format`` gives,
    ``{{`` -> ``{`` included: that is how SimpleLLMFunc fills docstrings, and what its users
    wrote theirs for. Any other template (a JSON example, ``{items[0]}`` meant literally)
    has only the given names' fields filled; every other brace, ``{{`` and ``}}`` included,
    stays exactly as written. A given name whose field cannot be filled (``{user.email}``
    with no such attribute) raises ConfigError rather than being sent unfilled."""
    if not params:
        return template
    try:
        return template.format_map(params)
    except Exception:
        pass  # not a str.format template for these names: fill the given ones one by one

    def fill(m: re.Match[str]) -> str:
        field = m.group(0)
        if m.group(1) is None or m.group(1) not in params:
            return field
        try:
            return field.format_map(params)
        except Exception as exc:
            raise ConfigError(
                f"_template_params: cannot fill {field}: {type(exc).__name__}: {exc}"
            ) from None

    return _TOKEN.sub(fill, template)


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
