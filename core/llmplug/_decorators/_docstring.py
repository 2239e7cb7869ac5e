"""Reading a function's docstring: its description and its ``Args:`` section (Google style,
also ``Parameters`` in NumPy style and ``:param x:`` in Sphinx style)."""

from __future__ import annotations

import inspect
import re

__all__ = ["parse_docstring"]

_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|Notes?)\s*:?\s*$"
)
_ARG = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::.*)?$")  # ``name : type``
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]+\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")
# Other Sphinx fields end the parameter before them (``:type x:`` is not part of x's text).
_FIELD = re.compile(r"^\s*:(?:type|returns?|rtype|raises?|yields?|ytype|var|ivar|cvar)\b")


def _is_underline(line: str) -> bool:
    return bool(line.strip()) and set(line.strip()) <= {"-"}


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {param: description})``; the description is everything before the
    first section header."""
    text = inspect.cleandoc(doc or "")
    desc: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    numpy = False  # NumPy style: ``name : type`` then the text on the lines below
    indent = 0  # of the current parameter's line
    lines = text.splitlines()
    for i, line in enumerate(lines):
        sphinx = _SPHINX.match(line)
        if sphinx:
            current = sphinx.group(1)
            args[current] = sphinx.group(2).strip()
            indent = len(line) - len(line.lstrip())
            section = "args"
            continue
        if _FIELD.match(line):
            section, current = "other", None
            continue
        header = _SECTION.match(line)
        underlined = i + 1 < len(lines) and _is_underline(lines[i + 1])
        if header and (
            line.rstrip().endswith(":") or header.group(1) == "Parameters" or underlined
        ):
            section = "args" if header.group(1).startswith(("Arg", "Param")) else "other"
            numpy = underlined
            current = None
            continue
        if section is None:
            desc.append(line)
        elif section == "args":
            if _is_underline(line):
                continue  # NumPy underline
            m = (_NUMPY_ARG if numpy else _ARG).match(line)
            line_indent = len(line) - len(line.lstrip())
            if m and (current is None or line_indent <= indent):
                current = m.group(1)
                args[current] = "" if numpy else m.group(2).strip()  # NumPy: a type
                indent = line_indent
            elif current is not None and line.strip():
                args[current] = (args[current] + " " + line.strip()).strip()
    return "\n".join(desc).strip(), args
