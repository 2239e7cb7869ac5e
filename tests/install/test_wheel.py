"""llmplug as users get it: the sdist holds what the README's commands need, and the wheel,
installed into a fresh venv without dev extras, imports, lists its plugins and runs the examples."""

from __future__ import annotations

import email
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

import llmplug

from ._venvs import DEFAULTS, ROOT, Venv, clean_env, rows
from .conftest import Built

pytestmark = pytest.mark.install  # slow: see conftest.py; `-m "not install"` skips


@pytest.fixture(scope="module")
def unpacked(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("sdist")
    with tarfile.open(built.sdist) as tar:
        tar.extractall(where, filter="data")
    [root] = where.iterdir()
    return root


def test_the_sdist_holds_every_tracked_file_the_readme_commands_use(unpacked: Path) -> None:
    for needed in (
        "scripts/demo",
        "scripts/test",
        "scripts/_setup.sh",
        ".ci/run",
        "tests/conftest.py",
        "tests/servers/litellm/start.sh",
        "examples/demo.py",
        "examples/provider.json",
        "examples/custom_plugin/pyproject.toml",
        "docs/architecture.md",
        "LICENSE",
        "pyproject.toml",
    ):
        assert (unpacked / needed).is_file(), needed
    ls = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if ls.returncode == 0:  # a git checkout (not itself an unpacked sdist)
        packed = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file()}
        assert set(ls.stdout.split()) - packed == set()


def test_the_wheel_holds_only_the_llmplug_package_typed_and_licensed(built: Built) -> None:
    info = f"llmplug-{llmplug.__version__}.dist-info"
    with zipfile.ZipFile(built.wheel) as whl:
        names = whl.namelist()
        meta = email.message_from_bytes(whl.read(f"{info}/METADATA"))
    # No top-level module another distribution could overwrite (or be overwritten by).
    assert {n.split("/")[0] for n in names} == {"llmplug", info}
    assert "llmplug/py.typed" in names
    assert f"{info}/licenses/LICENSE" in names
    assert meta["License-Expression"] == "MIT"
    assert "Typing :: Typed" in meta.get_all("Classifier", [])
    assert meta["Summary"] and "# llmplug" in str(meta.get_payload())  # the README
    runtime = {r.split(">")[0] for r in meta.get_all("Requires-Dist", []) if "extra ==" not in r}
    assert runtime == {"pluggy", "httpx2", "msgspec", "structlog"}  # dev tools only as an extra


def test_the_wheel_imports_without_dev_extras(user_venv: Venv) -> None:
    done = user_venv.python_code(
        "import importlib.util, llmplug, pathlib\n"
        "print(pathlib.Path(llmplug.__file__).parent)\n"
        "print(llmplug.__version__)\n"
        "dev = ('pytest', 'openai', 'pydantic', 'httpx', 'hatchling')\n"
        "print([m for m in dev if importlib.util.find_spec(m)])"
    )
    assert done.returncode == 0, done.stderr
    where, version, dev = done.stdout.splitlines()
    assert Path(where).is_relative_to(user_venv.path)  # the installed wheel, not the dev tree
    assert (Path(where) / "py.typed").is_file()
    assert (version, dev) == (llmplug.__version__, "[]")


@pytest.mark.parametrize("how", ["script", "module"])
def test_the_installed_cli_lists_the_default_plugins(user_venv: Venv, how: str) -> None:
    cmd = (
        [str(user_venv.bin("llmplug"))]
        if how == "script"
        else [str(user_venv.python), "-m", "llmplug"]
    )
    done = user_venv.run([*cmd, "plugins"])
    assert (done.returncode, done.stderr) == (0, "")
    assert rows(done.stdout) == DEFAULTS


def test_the_examples_in_the_sdist_run_on_the_installed_wheel(
    user_venv: Venv, unpacked: Path
) -> None:
    # demo.py runs every other example too.
    done = user_venv.run([str(user_venv.python), str(unpacked / "examples" / "demo.py")])
    assert done.returncode == 0, done.stderr
    assert "demo finished" in done.stdout
    assert "Traceback" not in done.stderr


CALL = """
import asyncio, sys

from llmplug import APIKeyPool, Done, OpenAICompatible, OpenAIResponsesCompatible, TextDelta

async def main() -> None:
    for cls in (OpenAICompatible, OpenAIResponsesCompatible):
        pool = APIKeyPool(api_keys=["sk-1", "sk-2"], provider_id="local")
        async with cls(api_key_pool=pool, model_name="m", base_url=sys.argv[1]) as llm:
            print((await llm.chat([{"role": "user", "content": "hi"}])).text)
            parts = [e.text async for e in llm.chat_stream("there") if isinstance(e, TextDelta)]
            print("".join(parts))

asyncio.run(main())
"""


def test_a_script_calls_the_standalone_test_server_both_from_the_wheel(user_venv: Venv) -> None:
    server = subprocess.Popen(
        [str(user_venv.python), "-m", "llmplug.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=user_venv.path,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()  # printed once it listens
        assert base_url.startswith("http://127.0.0.1:")
        done = user_venv.python_code(CALL, base_url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["echo: hi", "echo: there"] * 2
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err  # stops cleanly on SIGTERM
