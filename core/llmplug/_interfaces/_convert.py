"""provider.json objects (a model entry, a group) as their msgspec Structs, a bad one being a
:class:`ConfigError` that names the file, the entry and the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from llmplug._vocab._errors import ConfigError

__all__ = ["convert"]

T = TypeVar("T")

_AT = re.compile(r" - at `\$\.?([^`]*)`")
_OBJECT = re.compile(r"Object (missing required|contains unknown) field `([^`]+)`")
_SAY = {"missing required": "missing (required)", "contains unknown": "unknown field (misspelled?)"}


def convert(raw: Any, cls: type[T], where: str) -> T:
    """``raw`` as ``cls``; ``where`` says which file and entry it is, for the error."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be an object")
    try:
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        text = str(exc)
    # Raised outside the except block: one ConfigError, not one chained to msgspec's error.
    field = None
    if m := _AT.search(text):
        field, text = m.group(1), text[: m.start()]
    elif m := _OBJECT.match(text):
        field, text = m.group(2), _SAY[m.group(1)]
    if field is None:
        raise ConfigError(f"{where}: {text}")
    raise ConfigError(f"{where}: field {field!r}: {text}", field=field)
