"""Plugins installed as users install them: examples/custom_plugin, every distribution under
plugins/, a broken one and two that claim one wire name, each pip-installed from its wheel into a
venv next to llmplug's wheel; then discovered, disabled and used from that venv against a test
server started here."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from llmplug.testing import LLMTestServer

from ._venvs import DEFAULTS, Venv, rows
from .conftest import Built

pytestmark = pytest.mark.install  # slow: see conftest.py; `-m "not install"` skips

BROKEN = "skipped acme-broken: RuntimeError: acme is broken"

# Run inside the venv: calls through the default registry (the installed plugins), then prints
# the replies' text and the plugin-load warnings as JSON.
CALL = """
import asyncio, json, sys, warnings

from llmplug import APIKeyPool, OpenAICompatible, OpenAIResponsesCompatible, TextDelta

base_url, wires = sys.argv[1], sys.argv[2].split(",")

async def main() -> list[str]:
    texts = []
    for wire in wires:
        cls = OpenAIResponsesCompatible if wire == "openai-responses" else OpenAICompatible
        pool = APIKeyPool(["sk-venv"], "local")
        async with cls(pool, "venv-model", base_url, wire=wire, max_retries=0) as llm:
            texts.append((await llm.chat("hi")).text)
            if wire.startswith("openai"):
                events = [e async for e in llm.chat_stream("there")]
                texts.append("".join(e.text for e in events if isinstance(e, TextDelta)))
    return texts

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    texts = asyncio.run(main())
print(json.dumps({"texts": texts, "warnings": [str(w.message) for w in caught]}))
"""


def call(venv: Venv, server: LLMTestServer, wires: str, **env: str) -> tuple[list[str], list[str]]:
    done = venv.python_code(CALL, server.base_url, wires, env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["texts"], out["warnings"]


def test_every_installed_plugin_is_listed_with_its_distribution_and_version(
    plugin_venv: Venv, built: Built
) -> None:
    done = plugin_venv.run([str(plugin_venv.bin("llmplug")), "plugins"])
    listed = rows(done.stdout)
    expected = {
        ep: (project.name, project.version)
        for project in (*built.plugins, *built.test_dists)
        for ep in project.entry_points
        if ep != "acme-broken"
    }
    assert {name: row[:2] for name, row in listed.items()} == {
        **{name: row[:2] for name, row in DEFAULTS.items()},
        **expected,
    }
    assert listed["request-signing"] == ("llmplug-request-signing", "1.0.0", "build_request")
    assert {"acme-one", "acme-two"} <= set(listed)  # both claimants of "acme-chat" are loaded
    # The broken distribution is reported, not listed, and makes the command say so.
    assert (done.returncode, done.stderr) == (1, BROKEN + "\n")


def test_disabling_blocks_a_default_and_a_third_party_plugin_and_reports_unknown_names(
    plugin_venv: Venv, server: LLMTestServer
) -> None:
    disable = "openai-responses, request-signing,acme-broken,request-signign"
    env = {"LLMPLUG_DISABLE_PLUGINS": disable}
    done = plugin_venv.run([str(plugin_venv.bin("llmplug")), "plugins"], env=env)
    listed = rows(done.stdout)
    assert not {"openai-responses", "request-signing", "acme-broken"} & set(listed)
    assert {"openai-chat", "acme-one", "acme-two"} <= set(listed)
    assert done.stdout.splitlines()[-1] == (
        "disabled: acme-broken, openai-responses, request-signing"
    )
    # The misspelled name matches nothing: said, and not an installation failure.
    assert done.returncode == 0
    assert done.stderr == "LLMPLUG_DISABLE_PLUGINS names no installed plugin: request-signign\n"

    texts, warnings = call(plugin_venv, server, "openai-chat", **env)
    assert (texts, warnings) == (["echo: hi", "echo: there"], [])  # broken one never imported
    assert [r for r in server.requests if "x-request-id" in r.headers] == []
    failed = plugin_venv.python_code(
        "from llmplug import APIKeyPool, OpenAIResponsesCompatible\n"
        "OpenAIResponsesCompatible(APIKeyPool(['sk'], 'local'), 'm', 'http://127.0.0.1:9/v1')\n",
        env=env,
    )
    assert failed.returncode == 1
    assert "no plugin provides the wire format 'openai-responses'" in failed.stderr


def test_a_broken_plugin_is_reported_and_skipped_and_calls_still_work(
    plugin_venv: Venv, server: LLMTestServer
) -> None:
    texts, warnings = call(plugin_venv, server, "openai-chat,openai-responses")
    assert texts == ["echo: hi", "echo: there"] * 2
    assert warnings == ["llmplug plugin 'acme-broken' was skipped: RuntimeError: acme is broken"]


def test_the_installed_wrapper_signs_every_request_on_every_wire(
    plugin_venv: Venv, server: LLMTestServer
) -> None:
    secret = "s3cret"
    texts, _ = call(
        plugin_venv, server, "openai-chat,openai-responses", LLMPLUG_SIGNING_SECRET=secret
    )
    assert texts == ["echo: hi", "echo: there"] * 2
    assert [r.api for r in server.requests] == ["chat", "chat", "responses", "responses"]
    ids = [r.headers["x-request-id"] for r in server.requests]
    assert len(set(ids)) == 4  # one per HTTP request
    for r in server.requests:
        # The scheme its README documents, checked independently of the plugin's own code.
        stamp = r.headers["x-llmplug-timestamp"]
        message = f"{stamp}.{r.method} {r.path}.".encode() + r.body
        expected = "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        assert r.headers["x-llmplug-signature"] == expected
        assert r.json["model"] == "venv-model"  # the wrapped request is otherwise the default's

    # The plugin's own check, for the gateway's side, agrees; a changed body fails it.
    r = server.requests[0]
    check = (
        "import json, sys\n"
        "from llmplug_request_signing import verify\n"
        "headers, url, body = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3].encode()\n"
        "print(verify('s3cret', headers, 'POST', url, body))\n"
    )
    for body, valid in ((r.body, "True"), (r.body + b" ", "False")):
        args = (json.dumps(dict(r.headers)), server.base_url + "/chat/completions", body.decode())
        assert plugin_venv.python_code(check, *args).stdout.strip() == valid

    server.clear()
    call(plugin_venv, server, "openai-chat")  # without the secret: ids, no signature
    assert {"x-request-id", "x-llmplug-signature"} & set(server.requests[0].headers) == {
        "x-request-id"
    }


@pytest.mark.parametrize(
    ("disable", "winner"),
    [("acme-broken", "two"), ("acme-broken,acme-two", "one"), ("acme-broken,acme-one", "two")],
)
def test_two_distributions_claiming_one_wire_the_last_entry_point_name_wins(
    plugin_venv: Venv, server: LLMTestServer, disable: str, winner: str
) -> None:
    # acme-wire-one ("acme-one") and acme-wire-two ("acme-two") both answer "acme-chat". Third
    # parties register in entry-point name order and pluggy asks the last registered first.
    texts, _ = call(plugin_venv, server, "acme-chat", LLMPLUG_DISABLE_PLUGINS=disable)
    assert texts == [f"{winner}:echo: {winner}"]
    assert [r.headers["x-acme-impl"] for r in server.requests] == [winner]
