"""``llmplug plugins``, run as a user runs it: ``python -m llmplug`` and the console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmplug
from llmplug.cli._main import main

SCRIPT = Path(sys.executable).with_name("llmplug")
COMMANDS = {"module": [sys.executable, "-m", "llmplug"], "script": [str(SCRIPT)]}
DEFAULTS = {
    "key-strategies": ["check_key_strategy", "select_key"],
    "openai-chat": ["build_request", "parse_stream"],
    "openai-responses": ["build_request", "parse_stream"],
    "token-bucket": ["acquire_rate"],
}


def run(
    how: str, *args: str, disable: str | None = None, path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("LLMPLUG_DISABLE_PLUGINS", "PYTHONPATH")
    }
    if disable is not None:
        env["LLMPLUG_DISABLE_PLUGINS"] = disable
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run(
        [*COMMANDS[how], *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def table(stdout: str) -> dict[str, tuple[str, str, list[str]]]:
    """The rows of the listing: plugin -> (distribution, version, hooks)."""
    lines = stdout.splitlines()
    head = lines[0]
    assert head.split() == ["plugin", "distribution", "version", "serves", "hooks"]
    at = [head.index(h) for h in ("distribution", "version", "serves", "hooks")]
    rows = {}
    for line in lines[1:]:
        if line.startswith("disabled:"):
            continue
        name, dist, version = (line[a:b].strip() for a, b in zip([0, *at[:2]], at[:3], strict=True))
        rows[name] = (dist, version, line[at[3] :].strip().split(", "))
    return rows


def served(stdout: str) -> dict[str, str]:
    """plugin -> its "serves" column."""
    lines = stdout.splitlines()
    a, b = lines[0].index("serves"), lines[0].index("hooks")
    return {
        line.split()[0]: line[a:b].strip() for line in lines[1:] if not line.startswith("disabled:")
    }


def install(where: Path, dist: str, entry_point: str, module: str, source: str) -> None:
    """A distribution with one ``llmplug`` entry point, as pip would leave it in site-packages."""
    (where / f"{module}.py").write_text(source)
    info = where / f"{dist.replace('-', '_')}-2.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 2.0.1\n")
    (info / "entry_points.txt").write_text(f"[llmplug]\n{entry_point} = {module}\n")


@pytest.mark.parametrize("how", sorted(COMMANDS))
def test_plugins_lists_each_plugin_distribution_version_and_hooks(how: str) -> None:
    done = run(how, "plugins")
    assert (done.returncode, done.stderr) == (0, "")
    rows = table(done.stdout)
    for name, hooks in DEFAULTS.items():
        assert rows[name] == ("llmplug", llmplug.__version__, hooks)
    assert "disabled" not in done.stdout


@pytest.mark.parametrize("how", sorted(COMMANDS))
def test_a_disabled_plugin_is_not_listed(how: str) -> None:
    done = run(how, "plugins", disable="openai-chat,token-bucket")
    assert (done.returncode, done.stderr) == (0, "")
    rows = table(done.stdout)
    assert "openai-chat" not in rows
    assert "token-bucket" not in rows
    assert rows["key-strategies"] == (
        "llmplug",
        llmplug.__version__,
        ["check_key_strategy", "select_key"],
    )
    assert done.stdout.splitlines()[-1] == "disabled: openai-chat, token-bucket"


def test_a_disabled_name_that_matches_no_plugin_is_reported() -> None:
    done = run("module", "plugins", disable="token-bucket,tokenbucket")
    assert done.returncode == 0  # the installation is fine; the setting has a typo
    assert done.stderr == "LLMPLUG_DISABLE_PLUGINS names no installed plugin: tokenbucket\n"
    assert done.stdout.splitlines()[-1] == "disabled: token-bucket"
    assert "token-bucket" not in table(done.stdout)


def test_third_party_plugins_are_listed_and_broken_ones_reported(tmp_path: Path) -> None:
    hook = (
        "from llmplug import hookimpl\n\n"
        "@hookimpl(wrapper=True)\n"
        "def build_request(wire, call, key):\n"
        "    return (yield)\n"
    )
    install(tmp_path, "acme-signing", "acme-signing", "acme_signing_cli", hook)
    done = run("module", "plugins", path=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert table(done.stdout)["acme-signing"] == ("acme-signing", "2.0.1", ["build_request"])

    install(tmp_path, "acme-broken", "acme-broken", "acme_broken_cli", "raise ImportError('no')")
    done = run("module", "plugins", path=tmp_path)
    assert done.returncode == 1  # something is wrong with the installation
    assert done.stderr == "skipped acme-broken: ImportError: no\n"  # no warning or traceback
    rows = table(done.stdout)
    assert "acme-broken" not in rows
    assert set(rows) >= {"acme-signing", *DEFAULTS}


def test_plugins_show_the_names_they_serve_in_the_table_and_the_json(tmp_path: Path) -> None:
    weighted = (
        "from llmplug import hookimpl\n\n"
        "SERVES = {'key_strategy': ['weighted']}\n\n"
        "@hookimpl\n"
        "def select_key(strategy, pool, call):\n"
        "    return pool.lease(0) if strategy == 'weighted' else None\n"
    )
    install(tmp_path, "acme-weighted", "acme-weighted", "acme_weighted_cli", weighted)
    done = run("module", "plugins", path=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    names = served(done.stdout)
    assert names["acme-weighted"] == "key_strategy: weighted"
    assert names["openai-chat"] == "wire: openai-chat"
    assert names["key-strategies"] == "key_strategy: round_robin, least_loaded"
    assert names["token-bucket"] == "limiter: token_bucket"

    done = run("module", "plugins", "--json", path=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    listed = {d["plugin"]: d for d in map(json.loads, done.stdout.splitlines())}
    assert listed["acme-weighted"] == {
        "plugin": "acme-weighted",
        "distribution": "acme-weighted",
        "version": "2.0.1",
        "hooks": ["select_key"],
        "serves": {"key_strategy": ["weighted"]},
    }
    assert listed["group-strategies"]["serves"]["group_strategy"][0] == "weighted"


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in ([], ["frobnicate"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "usage: llmplug" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "plugins" in capsys.readouterr().out
