"""The messages SimpleLLMFunc's ``@llm_chat`` sends (0.7.8 and 0.8.4 alike): the system prompt
is a block describing the tools, the docstring, and a block of principles; the user message
is ``name: value`` for each argument."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmplug._decorators._tool import ToolFunction, Toolkit

__all__ = ["strip_blocks", "system_prompt", "user_text"]

_TOOLS_START, _TOOLS_END = "<tool_best_practices>", "</tool_best_practices>"
_MUST_START, _MUST_END = "<must_principles>", "</must_principles>"
_MUST = "\n".join(
    [
        _MUST_START,
        "<rule>Invoke tools through native structured tool_calls / function-calling fields.</rule>",
        "<rule>Use assistant content for natural-language reasoning and final responses.</rule>",
        "<rule>Keep tool invocation payloads in the native tool channel.</rule>",
        _MUST_END,
    ]
)
_INSTRUCTION = (
    "<instruction>Follow each tool contract and prefer tool-specific best practices.</instruction>"
)


def _without(text: str, start: str, end: str) -> str:
    while (i := text.find(start)) >= 0:
        j = text.find(end, i)
        text = text[:i] if j < 0 else text[:i] + text[j + len(end) :]
    return text.strip()


def strip_blocks(text: str) -> str:
    """A system prompt without the blocks an earlier turn added (SimpleLLMFunc's or llmplug's
    tool block, the principles)."""
    return _without(_without(text, _TOOLS_START, _TOOLS_END), _MUST_START, _MUST_END)


def _dedupe_key(text: str) -> str:
    return " ".join(text.replace("`", "").split()).strip().lower().rstrip(".")


def _description(t: ToolFunction[..., Any]) -> str:
    """The tool's own description (llmplug appends the best practices to what the model
    sees; SimpleLLMFunc lists them in this block instead)."""
    text = t.spec.description
    if t.best_practices:
        suffix = "\n\nBest practices:\n" + "\n".join(f"- {p}" for p in t.best_practices)
        text = text.removesuffix(suffix).removesuffix(suffix.lstrip())
    return text.strip()


def _tool_block(toolkit: Toolkit) -> str | None:
    lines = [_TOOLS_START, _INSTRUCTION]
    for name in sorted(toolkit.tools):
        t = toolkit.tools[name]
        lines.append(f'<tool name="{name}">')
        description = _description(t)
        if description:
            lines.append(f"<use>{description}</use>")
        known = _dedupe_key(description)
        practices: list[str] = []
        for practice in t.best_practices:
            key = _dedupe_key(practice)
            if key and key not in [_dedupe_key(p) for p in practices] and key not in known:
                practices.append(practice)
        lines += [
            f'<best_practice index="{i}">{p}</best_practice>'
            for i, p in enumerate(practices, start=1)
        ]
        injected = t.prompt_injection({})
        if injected:
            lines.append(injected)
        lines.append("</tool>")
    if len(lines) == 2:
        return None
    return "\n".join([*lines, _TOOLS_END])


def system_prompt(base: str, toolkit: Toolkit) -> str:
    sections = [_tool_block(toolkit), strip_blocks(base), _MUST]
    return "\n\n".join(s for s in sections if s).strip()


def user_text(arguments: Mapping[str, Any], exclude: frozenset[str]) -> str:
    """``name: value`` per argument (str() of the value), tab-indented after the first."""
    return "\n\t".join(
        f"{name}: {value}"
        for name, value in arguments.items()
        if name not in exclude and value is not None and value != ""
    )
