"""The core's layers (docs/architecture.md): every import, ``TYPE_CHECKING`` and function-local
ones included, points to the importer's own layer or one below it, and every module of the core
sits in a layer. Read from the source with ast: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import llmplug

ROOT = Path(llmplug.__file__).parent

#: Top to bottom. Names in one row are independent of each other: none imports another.
LAYERS: list[tuple[str, ...]] = [
    ("llmplug.__main__",),
    ("llmplug.cli", "llmplug.slf", "llmplug.testing", "llmplug._plugins"),
    ("llmplug",),  # __init__.py: the public names
    ("llmplug._decorators",),
    ("llmplug._interfaces",),
    ("llmplug._engine",),
    ("llmplug._limits",),
    ("llmplug._wire",),  # llmplug.wire is its public face
    ("llmplug._vocab",),
]
#: Modules that belong to a layer other than their package's.
PLACED = {"llmplug.wire": "llmplug._wire"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["llmplug", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _component(module: str) -> str | None:
    """The layer entry a module belongs to: the longest name that is it or a package above it
    (``llmplug`` itself only by name: a flat ``llmplug._x`` belongs to no layer)."""
    module = PLACED.get(module, module)
    found = None
    for row in LAYERS:
        for name in row:
            inside = module == name or (name != "llmplug" and module.startswith(name + "."))
            if inside and (found is None or len(name) > len(found)):
                found = name
    return found


def _level(component: str) -> int:
    return next(i for i, row in enumerate(LAYERS) if component in row)


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, module imported) for every llmplug import in ``path``, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # `from pkg import mod` imports the module mod, `from pkg import name` the package.
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            out += [(node.lineno, t) for t in subs or [target]]
    return [(line, t) for line, t in out if t == "llmplug" or t.startswith("llmplug.")]


def _known(target: str) -> str:
    """The module an import names (``llmplug._vocab._types.Message`` is in ``_types``)."""
    while target not in MODULES and "." in target:
        target = target.rpartition(".")[0]
    return target


def test_every_module_sits_in_a_layer() -> None:
    assert [m for m in sorted(MODULES) if _component(m) is None] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers(module: str) -> None:
    mine = _component(module)
    assert mine is not None
    wrong = []
    for line, target in _imports(module, MODULES[module]):
        theirs = _component(_known(target))
        assert theirs is not None, f"{module}:{line} imports {target}, which is in no layer"
        if theirs == mine:
            continue
        if _level(theirs) <= _level(mine):  # the same row: siblings, independent
            wrong.append(f"{module}:{line} imports {target} ({theirs} is not below {mine})")
    assert wrong == []


def test_the_check_sees_an_import_up_the_layers(tmp_path: Path) -> None:
    # The rule's own check: a TYPE_CHECKING import from the vocabulary up to the engine is seen.
    path = tmp_path / "_x.py"
    path.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from .._engine._pipeline import Pipeline\n"
    )
    [(line, target)] = _imports("llmplug._vocab._x", path)
    assert (line, target) == (3, "llmplug._engine._pipeline")
    theirs = _component(_known(target))
    assert theirs == "llmplug._engine"
    assert _level(theirs) < _level("llmplug._vocab")
