"""Session fixtures: llmplug's wheel and sdist, built once, and throwaway venvs with real installs.

Slow parts (each once per session): building the sdist and wheels (~3 s), one venv with only
llmplug's wheel (~4 s), one with llmplug and every plugin distribution (~5 s)."""

from __future__ import annotations

import importlib.metadata as md
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from ._venvs import ROOT, Venv, build_sdist_and_wheel, build_wheels, repack_requirements

CUSTOM_PLUGIN = ROOT / "examples" / "custom_plugin"
#: Every plugin distribution in the tree: a directory under plugins/ with its own pyproject.toml.
PLUGIN_PROJECTS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))

# Distributions that exist only to be installed by these tests: a broken one, and two that claim
# the same wire name.
_WIRE = """
    import json

    from llmplug import Call, Completion, HTTPRequest, hookimpl

    IMPL = {impl!r}


    class Parser:
        done = False

        def feed(self, event):
            return []

        def result(self):
            return Completion()

        def parse_body(self, body):
            text = json.loads(body)["choices"][0]["message"]["content"]
            return Completion(text=IMPL + ":" + text)


    @hookimpl
    def build_request(wire: str, call: Call, key: str):
        if wire != "acme-chat":
            return None
        body = {{"model": call.model, "messages": [{{"role": "user", "content": IMPL}}]}}
        request = HTTPRequest(
            url=call.base_url + "/chat/completions",
            headers={{"authorization": "Bearer " + key, "content-type": "application/json"}},
            content=json.dumps(body).encode(),
        )
        request.headers["x-acme-impl"] = IMPL
        return request


    @hookimpl
    def parse_stream(wire: str, call: Call):
        return Parser() if wire == "acme-chat" else None
"""
TEST_DISTS = {
    # distribution: (entry-point name, module, source)
    "acme-broken": ("acme-broken", "acme_broken", "raise RuntimeError('acme is broken')\n"),
    "acme-wire-one": ("acme-one", "acme_wire_one", _WIRE.format(impl="one")),
    "acme-wire-two": ("acme-two", "acme_wire_two", _WIRE.format(impl="two")),
}


@dataclass(frozen=True)
class Project:
    path: Path
    name: str
    version: str
    entry_points: dict[str, str]
    requires: list[str]

    @classmethod
    def read(cls, path: Path) -> Project:
        meta = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        eps = meta.get("entry-points", {}).get("llmplug", {})
        return cls(path, meta["name"], meta["version"], dict(eps), meta.get("dependencies", []))


@dataclass(frozen=True)
class Built:
    wheelhouse: Path
    sdist: Path
    wheel: Path
    plugins: list[Project]  # examples/custom_plugin and plugins/*
    test_dists: list[Project]


def _write_test_dist(where: Path, dist: str, ep: str, module: str, source: str) -> Path:
    project = where / dist
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(textwrap.dedent(source))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(f"""
            [build-system]
            requires = ["hatchling"]
            build-backend = "hatchling.build"
            [project]
            name = "{dist}"
            version = "2.0.1"
            dependencies = ["llmplug"]
            [project.entry-points.llmplug]
            {ep} = "{module}"
            [tool.hatch.build.targets.wheel]
            packages = ["{module}"]
        """)
    )
    return project


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Slow (~3 s): the sdist, the wheels, and the runtime dependencies' wheels."""
    house = tmp_path_factory.mktemp("wheelhouse")
    sdist, wheel = build_sdist_and_wheel(house)
    src = tmp_path_factory.mktemp("test-dists")
    tests = [Project.read(_write_test_dist(src, dist, *spec)) for dist, spec in TEST_DISTS.items()]
    plugins = [Project.read(p) for p in (CUSTOM_PLUGIN, *PLUGIN_PROJECTS)]
    projects = [*plugins, *tests]
    build_wheels([p.path for p in projects], house)
    requirements = [*(md.requires("llmplug") or ()), *(r for p in projects for r in p.requires)]
    repack_requirements(requirements, house, skip={"llmplug", *(p.name for p in projects)})
    return Built(house, sdist, wheel, plugins, tests)


@pytest.fixture(scope="session")
def user_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """Slow (~4 s): a venv with llmplug's wheel and its runtime dependencies, nothing else."""
    env = Venv(tmp_path_factory.mktemp("user") / "venv")
    env.install(built.wheelhouse, str(built.wheel))
    return env


@pytest.fixture(scope="session")
def plugin_venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """Slow (~5 s): llmplug, examples/custom_plugin, every plugins/* distribution, and the test
    distributions (a broken one, two claiming one wire name), each installed from its wheel."""
    env = Venv(tmp_path_factory.mktemp("plugins") / "venv")
    names = [p.name for p in (*built.plugins, *built.test_dists)]
    env.install(built.wheelhouse, str(built.wheel), *names)
    return env
