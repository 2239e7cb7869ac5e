"""A function's type hints, when they name classes local to the function that defines it."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["type_hints"]

#: How many frames up from the decorator we look for the scope that defined the function.
_MAX_DEPTH = 12


def type_hints(fn: Callable[..., Any], *, include_extras: bool = False) -> dict[str, Any]:
    """``typing.get_type_hints(fn)``; with ``from __future__ import annotations``, a class
    defined inside a function (a test, a factory) is a name the module cannot resolve, so the
    frames of the decorator's callers are tried in turn, as pydantic does: the one that
    defined ``fn`` holds it."""
    try:
        return typing.get_type_hints(fn, include_extras=include_extras)
    except NameError as first:
        frame = sys._getframe(1)
        for _ in range(_MAX_DEPTH):
            frame_or_none = frame.f_back
            if frame_or_none is None:
                break
            frame = frame_or_none
            try:
                return typing.get_type_hints(
                    fn, localns=dict(frame.f_locals), include_extras=include_extras
                )
            except NameError:
                continue
        raise first
