"""Throwaway virtual environments with real installs, made offline.

Every distribution is installed as a user's pip installs it: from a wheel, into a fresh venv,
with ``--no-index``. The wheels come from here: llmplug's from its sdist (``python -m build``),
each plugin's from its own pyproject.toml, and the runtime dependencies repacked from the
installed copies in the dev venv (the very versions the suite runs against), so no index is
needed and nothing is downloaded."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.metadata as md
import io
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import llmplug

ROOT = Path(__file__).resolve().parents[2]

#: What `llmplug plugins` lists for llmplug alone.
DEFAULTS = {
    "group-strategies": ("llmplug", llmplug.__version__, "select_member"),
    "key-strategies": ("llmplug", llmplug.__version__, "check_key_strategy, select_key"),
    "openai-chat": ("llmplug", llmplug.__version__, "build_request, parse_stream"),
    "openai-responses": ("llmplug", llmplug.__version__, "build_request, parse_stream"),
    "token-bucket": ("llmplug", llmplug.__version__, "acquire_rate"),
}


def rows(stdout: str) -> dict[str, tuple[str, str, str]]:
    """The table `llmplug plugins` prints: plugin -> (distribution, version, hooks)."""
    lines = stdout.splitlines()
    head = lines[0]
    assert head.split() == ["plugin", "distribution", "version", "serves", "hooks"]
    at = [head.index(h) for h in ("distribution", "version", "serves", "hooks")]
    out = {}
    for line in lines[1:]:
        if not line.startswith("disabled:"):
            name, dist, version = (
                line[a:b].strip() for a, b in zip([0, *at[:2]], at[:3], strict=True)
            )
            out[name] = (dist, version, line[at[3] :].strip())
    return out


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus anything that would make a venv see the dev tree or its settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "LLMPLUG_", "VIRTUAL_ENV", "PIP_"))
    }
    env.update(PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1", **extra)
    return env


def run(args: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_sdist_and_wheel(outdir: Path) -> tuple[Path, Path]:
    """llmplug's sdist, and its wheel built from that sdist (as ``python -m build`` does)."""
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir), str(ROOT)])
    [sdist] = outdir.glob("llmplug-*.tar.gz")
    [wheel] = outdir.glob("llmplug-*.whl")
    return sdist, wheel


def build_wheels(projects: list[Path], outdir: Path) -> None:
    """Wheels of plugin distributions, through their PEP 517 backend (hatchling), in one process."""
    code = (
        "import os, sys, hatchling.build as b\n"
        "out = sys.argv[1]\n"
        "for p in sys.argv[2:]:\n"
        "    os.chdir(p)\n"
        "    b.build_wheel(out)\n"
    )
    run([sys.executable, "-c", code, str(outdir), *map(str, projects)])


def repack_requirements(requirements: list[str], outdir: Path, skip: set[str]) -> None:
    """Wheels of ``requirements`` and their dependencies (the closure), made from the files
    installed in the dev venv; distributions named in ``skip`` are built from source instead."""
    todo = [Requirement(r) for r in requirements]
    done = {canonicalize_name(name) for name in skip}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in done or (req.marker is not None and not req.marker.evaluate({"extra": ""})):
            continue
        done.add(name)
        try:
            installed = md.distribution(req.name)
        except md.PackageNotFoundError:
            raise AssertionError(
                f"{req.name} is needed by a distribution under test but is not installed in the "
                "dev venv: add it to pyproject.toml's dev extra"
            ) from None
        _repack(installed, outdir)
        todo.extend(Requirement(r) for r in installed.requires or ())


def _repack(dist: md.Distribution, outdir: Path) -> None:
    files = [
        f for f in dist.files or () if not str(f).startswith("..") and "__pycache__" not in str(f)
    ]
    info = next(f for f in files if str(f).endswith(".dist-info/WHEEL")).parent
    tags = [
        line.split(":", 1)[1].strip()
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ]
    parts = [sorted({t.split("-")[i] for t in tags}) for i in range(3)]
    tag = "-".join(".".join(p) for p in parts)
    name = canonicalize_name(dist.metadata["Name"]).replace("-", "_")
    record, buf = [], io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            path = str(f)
            if path.startswith(str(info)) and f.name in ("RECORD", "INSTALLER", "REQUESTED"):
                continue
            if f.name == "direct_url.json":
                continue
            data = Path(str(f.locate())).read_bytes()
            zf.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append((path, f"sha256={digest.decode()}", str(len(data))))
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([*record, (f"{info}/RECORD", "", "")])
        zf.writestr(f"{info}/RECORD", out.getvalue())
    (outdir / f"{name}-{dist.version}-{tag}.whl").write_bytes(buf.getvalue())


class Venv:
    """A fresh venv without pip: the dev venv's pip installs into it (``pip --python``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        venv.EnvBuilder(with_pip=False, clear=True).create(path)
        self.python = path / "bin" / "python"

    def install(self, wheelhouse: Path, *requirements: str) -> None:
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(self.python),
                "install",
                "--quiet",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                *requirements,
            ],
            env=clean_env(),
        )

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def run(
        self, args: list[str], *, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A command of this venv, run in the venv's folder with a clean environment (plus
        ``env``), so it never sees the dev tree."""
        return subprocess.run(
            args,
            cwd=self.path,
            env=clean_env(**(env or {})),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def python_code(
        self, code: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.python), "-c", code, *args], env=env)
