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
_SPHINX = re.compile(r"^\s*:param\s+(?:[^:]+\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(description, {param: description})``; the description is everything before the
    first section header."""
    text = inspect.cleandoc(doc or "")
    desc: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in text.splitlines():
        sphinx = _SPHINX.match(line)
        if sphinx:
            current = sphinx.group(1)
            args[current] = sphinx.group(2).strip()
            section = "args"
            continue
        header = _SECTION.match(line)
        if header and (line.rstrip().endswith(":") or header.group(1) == "Parameters"):
            section = "args" if header.group(1).startswith(("Arg", "Param")) else "other"
            current = None
            continue
        if section is None:
            desc.append(line)
        elif section == "args":
            if set(line.strip()) <= {"-"} and line.strip():
                continue  # NumPy underline
            m = _ARG.match(line)
            indent = len(line) - len(line.lstrip())
            if m and (current is None or indent <= _indent_of(text, current)):
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current is not None and line.strip():
                args[current] = (args[current] + " " + line.strip()).strip()
    return "\n".join(desc).strip(), args


def _indent_of(text: str, name: str) -> int:
    for line in text.splitlines():
        m = _ARG.match(line)
        if m and m.group(1) == name:
            return len(line) - len(line.lstrip())
    return 0
