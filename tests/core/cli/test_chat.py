"""``llmplug chat``, ``models`` and ``--version`` as a user runs them; the interactive chat in
a real terminal (tmux)."""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import llmplug
from llmplug.testing import Error, Fault, LLMTestServer, Reply, ToolCallReply

from ._run import LLMPLUG, pane, provider_file, run, wait_for


def test_version() -> None:
    done = run("--version")
    assert (done.returncode, done.stdout) == (0, f"llmplug {llmplug.__version__}\n")


def test_a_prompt_streams_the_reply(server: LLMTestServer, tmp_path: Path) -> None:
    server.push(Reply(text="Paris is the capital.", reasoning="they ask about France"))
    config = provider_file(tmp_path, server)
    done = run(
        "chat",
        "-c",
        config,
        "-m",
        "local/test-model",
        "capital of France?",
        "--system",
        "be brief",
        "-p",
        "temperature=0.2",
        "-p",
        'stop=["x"]',
        "-p",
        "user=bob",
        "-p",
        "logprobs=true",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Paris is the capital.\n"  # piped stdout: the answer only
    assert done.stderr == "they ask about France\n"  # reasoning beside it
    body = server.requests[0].json
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "capital of France?"},
    ]
    assert (body["temperature"], body["stop"], body["user"], body["logprobs"]) == (
        0.2,
        ["x"],
        "bob",
        True,
    )


def test_piped_stdin_is_the_prompt(server: LLMTestServer, tmp_path: Path) -> None:
    config = provider_file(tmp_path, server)
    done = run("chat", "-c", config, "-m", "test-model", "Summarize:", stdin="a long text")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo: Summarize:\n\na long text\n"


def test_tool_calls_are_shown(server: LLMTestServer, tmp_path: Path) -> None:
    server.push(Reply(tool_calls=[ToolCallReply("get_weather", {"city": "Paris"}, id="c1")]))
    config = provider_file(tmp_path, server)
    done = run("chat", "-c", config, "-m", "local/test-model", "weather?")
    assert done.returncode == 0, done.stderr
    assert done.stderr == '[tool call get_weather({"city":"Paris"}) id=c1]\n'


def test_json_is_the_whole_completion_with_its_cost(server: LLMTestServer, tmp_path: Path) -> None:
    server.push(
        Reply(
            text="hi",
            usage={"prompt_tokens": 2000, "completion_tokens": 500, "total_tokens": 2500},
            headers={"x-request-id": "req_abc"},
        )
    )
    config = provider_file(tmp_path, server, pricing={"input": 3.0, "output": 15.0})
    done = run("chat", "-c", config, "-m", "local/test-model", "hello", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["text"] == "hi"
    assert out["usage"]["input_tokens"] == 2000
    assert out["cost"] == pytest.approx((2000 * 3.0 + 500 * 15.0) / 1e6)
    assert out["request_id"] == "req_abc"
    assert out["raw"]["object"] == "chat.completion"  # the provider's body, as JSON
    assert server.requests[0].json.get("stream") is not True


def test_errors_are_one_line_and_an_exit_code(server: LLMTestServer, tmp_path: Path) -> None:
    from llmplug.testing import Error

    config = provider_file(tmp_path, server, max_retries=0)
    server.push(Error(status=400, message="bad request here"))
    done = run("chat", "-c", config, "-m", "local/test-model", "hi")
    assert done.returncode == 4
    assert done.stderr.startswith("llmplug: error: [local/test-model] bad request here")
    assert len(done.stderr.splitlines()) == 1

    bad = tmp_path / "bad.json"
    bad.write_text('{"local": [{"model_name": "m", "api_keys": [], "base_url": "ftp://x"}]}')
    cases: list[tuple[list[str | Path], int, str]] = [
        (["-c", bad, "-m", "m"], 3, "bad.json: provider 'local', model entry 0 (m)"),
        (["-c", tmp_path / "none.json", "-m", "m"], 3, "none.json: no such provider file"),
        (["-c", config, "-m", "local/other"], 3, "no model 'local/other'"),
        (["-c", config, "-m", "local/test-model", "-p", "novalue"], 2, "--param wants key=value"),
    ]
    for args, code, says in cases:
        done = run("chat", *args, "hi")
        assert done.returncode == code, done.stderr
        assert done.stderr.startswith("llmplug: error: ") and says in done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_models_lists_models_keys_by_fingerprint_and_limits(
    server: LLMTestServer, tmp_path: Path
) -> None:
    config = provider_file(
        tmp_path, server, tokens_per_minute=90_000, pricing={"input": 2.5, "output": 10}
    )
    done = run("models", "-c", config)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["model", "wire", "keys"]
    chat = next(line for line in lines if line.startswith("local/test-model"))
    assert "openai-chat" in chat and "3: key-" in chat and "90000" in chat
    assert "2.5/2.5/10" in chat
    assert "sk-batch" not in done.stdout  # never a key
    assert any(line.startswith("local/resp-model  openai-responses") for line in lines)


# -- the interactive chat, in a real terminal ----------------------------------------------------


def test_interactive_chat_keeps_the_history(
    server: LLMTestServer, tmp_path: Path, tmux: Callable[..., str]
) -> None:
    config = provider_file(tmp_path, server)
    rc = tmp_path / "rc"
    command = " ".join(
        shlex.quote(x)
        for x in [*LLMPLUG, "chat", "-c", str(config), "-m", "local/test-model", "-s", "be kind"]
    )
    script = tmp_path / "chat.sh"
    # The shell gets the terminal's Ctrl-C too: a trap (not an ignore, which the chat would
    # inherit) keeps it alive to write the exit code.
    script.write_text(f"trap true INT\n{command}\necho $? > {rc}\nsleep 60\n")
    session = tmux(f"sh {shlex.quote(str(script))}")
    # capture-pane drops trailing spaces: the prompt "> " shows as ">".
    wait_for(lambda: "\n>" in pane(session), "the prompt", screen=lambda: pane(session))
    assert "chat with local/test-model" in pane(session)
    server.push(Reply(text="Hello, Ada.", reasoning="a greeting", chunk_delay=0.001))
    subprocess.run(["tmux", "send-keys", "-t", session, "hi, I am Ada", "Enter"], check=True)
    wait_for(
        lambda: "Hello, Ada." in pane(session), "the first reply", screen=lambda: pane(session)
    )
    subprocess.run(["tmux", "send-keys", "-t", session, "who am I?", "Enter"], check=True)
    wait_for(lambda: "echo: who am I?" in pane(session), "the second reply")
    second = server.requests[1].json["messages"]
    assert second == [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "hi, I am Ada"},
        {"role": "assistant", "content": "Hello, Ada."},
        {"role": "user", "content": "who am I?"},
    ]
    screen = pane(session)
    assert "a greeting" in screen  # the reasoning is shown (dimmed) before the reply

    # Ctrl-C during a reply cancels that reply only; the chat goes on without it.
    server.push(Fault("never_ending", seconds=60))
    subprocess.run(["tmux", "send-keys", "-t", session, "go on forever", "Enter"], check=True)
    wait_for(lambda: len(server.requests) == 3 and " z" in pane(session), "the endless reply")
    subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
    wait_for(lambda: "[interrupted]" in pane(session), "the interruption")
    server.wait_for_client_aborts(1)
    subprocess.run(["tmux", "send-keys", "-t", session, "still there?", "Enter"], check=True)
    wait_for(lambda: "echo: still there?" in pane(session), "the reply after it")
    assert [m["content"] for m in server.requests[3].json["messages"]][-2:] == [
        "echo: who am I?",
        "still there?",
    ]
    subprocess.run(["tmux", "send-keys", "-t", session, "C-d"], check=True)
    wait_for(rc.exists, "the chat to end", screen=lambda: pane(session))
    wait_for(lambda: rc.read_text().strip() != "", "the exit code")
    assert rc.read_text().strip() == "0"


def test_a_group_of_the_file_is_a_model_for_chat_and_models(
    server: LLMTestServer, tmp_path: Path
) -> None:
    config = provider_file(tmp_path, server)
    data = json.loads(config.read_text())
    data["groups"] = {"both": {"members": ["local/test-model"], "fallbacks": ["local/resp-model"]}}
    config.write_text(json.dumps(data))
    server.push(Reply(text="answered by the group"))
    done = run("chat", "-c", config, "-m", "both", "hi")
    assert (done.returncode, done.stdout) == (0, "answered by the group\n"), done.stderr
    listed = run("models", "-c", config)
    assert "group both (weighted): local/test-model; fallbacks: local/resp-model" in listed.stdout
    # batch too: the chat member fails (its 9 attempts), the Responses fallback answers, and
    # the line's body is a Chat Completions one, as every line of a group of two wires is.
    server.push(*[Error(status=500, message="down")] * 9)
    line = json.dumps({"id": "x", "prompt": "hello"})
    done = run("batch", "-c", config, "-m", "both", "-", "-o", "-", stdin=line + "\n")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "echo: hello"
    assert server.requests[-1].api == "responses"
