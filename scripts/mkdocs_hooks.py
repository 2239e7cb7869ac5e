"""mkdocs hooks for the documentation site (mkdocs.yml names this file).

- Every public name (``llmplug.__all__``, ``llmplug.wire.__all__``, ``llmplug.testing.__all__``)
  and every public method of a public class must have a docstring, and must appear in the API
  reference: otherwise a warning, which ``mkdocs build --strict`` turns into a failure.
- The pages are also read on GitHub, where a link to a file outside docs/ (a plugin's README,
  an example) works. The site has no copy of those files, so such a link is checked to exist
  and shown as the file's path in the repository; a link to a file that does not exist fails.
- The docstrings' Sphinx roles (``:class:``, ``:meth:``...) are dropped from the pages: their
  names show as code.
- docs/cache.md (the response cache's guide) joins the navigation when it exists.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path
from typing import Any

import griffe

log = logging.getLogger("mkdocs.hooks.llmplug")

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = ("llmplug", "llmplug.wire", "llmplug.testing")
#: A Sphinx role before a code span in a rendered docstring (``:class:`llmplug.Call```).
ROLE = re.compile(r":(?:class|meth|func|data|attr|exc|mod|obj|py:\w+):(?=<code>)")
#: ``[text](target)`` with a relative target (no scheme, no leading ``/`` or ``#``).
LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\((?![a-z]+:|/|#)([^)\s]+)\)")


@functools.cache
def _public_objects() -> tuple[tuple[str, griffe.Object], ...]:
    found: list[tuple[str, griffe.Object]] = []
    for name in PUBLIC_MODULES:
        module = griffe.load(name, search_paths=[str(ROOT / "core")], resolve_aliases=True)
        for export in module.exports or ():
            member = module[str(export)]
            target = member.final_target if isinstance(member, griffe.Alias) else member
            found.append((f"{name}.{export}", target))
    return tuple(found)


def _undocumented() -> list[str]:
    missing: list[str] = []
    for public, obj in _public_objects():
        if not obj.docstring:
            missing.append(public)
        if obj.is_class:
            for mname, member in obj.members.items():
                if mname.startswith("_") or isinstance(member, griffe.Alias):
                    continue
                if member.is_function and not member.docstring:
                    missing.append(f"{public}.{mname}")
    return missing


def _referenced(docs_dir: Path) -> set[str]:
    """The objects the API reference pages render (``::: llmplug.Name``)."""
    names: set[str] = set()
    for page in (docs_dir / "api").glob("*.md"):
        names |= set(re.findall(r"^::: ([\w.]+)", page.read_text(encoding="utf-8"), re.M))
    return names


def on_config(config: Any) -> Any:
    docs_dir = Path(config["docs_dir"])
    for public in _undocumented():
        log.warning("%s has no docstring: the API reference is made from docstrings", public)
    referenced = _referenced(docs_dir)
    for public, _ in _public_objects():
        if public not in referenced:
            log.warning("%s is public but in no page of docs/api/", public)
    if (docs_dir / "cache.md").is_file():
        _add_to_guides(config["nav"], {"The response cache": "cache.md"})
    return config


def _add_to_guides(nav: list[Any], entry: dict[str, str]) -> None:
    for section in nav:
        if isinstance(section, dict) and "Guides" in section:
            guides = section["Guides"]
            if entry not in guides:
                at = next(
                    (i + 1 for i, g in enumerate(guides) if "observability.md" in g.values()),
                    len(guides),
                )
                guides.insert(at, entry)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    source = Path(page.file.abs_src_path).resolve()

    def outside(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        path = target.split("#", 1)[0]
        if not path:
            return match.group(0)
        resolved = (source.parent / path).resolve()
        if resolved.is_relative_to(docs_dir):
            return match.group(0)  # mkdocs checks links between pages itself
        if not resolved.exists():
            log.warning("%s links to %s, which does not exist", page.file.src_path, target)
            return match.group(0)
        where = resolved.relative_to(ROOT).as_posix()
        if where.startswith(text.strip("`").rstrip("/")):
            return f"`{where}`"  # the text was the path already
        return f"{text} (`{where}`)"

    return LINK.sub(outside, markdown)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return ROLE.sub("", html)
