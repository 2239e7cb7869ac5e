"""``llmplug batch -m GROUP``: a provider.json group over two test servers standing for two
providers, run as a subprocess. Calls fail over between them; each id is answered once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmplug.cli._common import load_models
from llmplug.testing import Error, Fault, LLMTestServer, RecordedRequest, Reply

from ._run import LLMPLUG, batch_on_terminal, env, output_lines, run
from .test_batch import BatchOutputLine, check_line, write_input


def group_file(tmp: Path, a: LLMTestServer, b: LLMTestServer, **group: Any) -> Path:
    """Providers ``a`` and ``b`` (``test-model`` each) and the group ``both`` of the two."""

    def entry(server: LLMTestServer, key: str, **extra: Any) -> dict[str, Any]:
        return {
            "model_name": "test-model",
            "api_keys": [key],
            "base_url": server.base_url,
            "max_retries": 1,
            "retry_delay": 0.001,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000,
            **extra,
        }

    data = {
        "a": [entry(a, "sk-provider-a", pricing={"input": 1.0, "output": 2.0})],
        "b": [entry(b, "sk-provider-b", pricing={"input": 3.0, "output": 4.0})],
        "groups": {"both": {"members": ["a/test-model", "b/test-model"], **group}},
    }
    path = tmp / "provider.json"
    path.write_text(json.dumps(data))
    return path


USAGE = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


def failing_on(name: str, every: int) -> Any:
    """A provider that answers 500 to the prompts q<i> with i % every == 0 (its retries too),
    and names itself in the others' answers."""

    def handler(req: RecordedRequest) -> Reply | Error:
        i = int(req.last_user_text.removeprefix("q"))
        if i % every == 0:
            return Error(status=500, message=f"{name} is down for q{i}")
        return Reply(text=f"{name}: q{i}", usage=USAGE)

    return handler


def test_calls_fail_over_between_members_and_only_fail_where_every_member_did(
    server: LLMTestServer, other: LLMTestServer, tmp_path: Path
) -> None:
    server.handler = failing_on("a", 3)
    other.handler = failing_on("b", 5)
    # A circuit that never opens: which member failed a call depends on the prompt alone.
    config = group_file(tmp_path, server, other, failure_threshold=1000)
    src = write_input(tmp_path / "in.jsonl", 120)
    out = tmp_path / "out.jsonl"
    done = run("batch", "-c", config, "-m", "both", src, "-o", out, "--max-in-flight", "16")
    assert done.returncode == 1, done.stderr  # some requests ended as error lines
    lines: dict[str, BatchOutputLine] = {}
    for raw in output_lines(out):
        assert raw["custom_id"] not in lines  # each id exactly once
        lines[raw["custom_id"]] = check_line(raw)
    assert set(lines) == {f"r{i}" for i in range(120)}
    failed = {cid for cid, line in lines.items() if line.error is not None}
    assert failed == {f"r{i}" for i in range(0, 120, 15)}  # where both members failed
    for cid in failed:
        response = lines[cid].response
        assert response is not None and response.status_code == 500
    by = {"a": 0, "b": 0}
    for cid, line in lines.items():
        if cid in failed:
            continue
        assert line.response is not None
        text = line.response.body["choices"][0]["message"]["content"]
        who, _, prompt = text.partition(": ")
        assert prompt == f"q{cid[1:]}"
        by[who] += 1
    assert by["a"] and by["b"]
    # Cost summed over the members at each one's price: 1000 in, 100 out per answer.
    cost = by["a"] * (1000 * 1.0 + 100 * 2.0) / 1e6 + by["b"] * (1000 * 3.0 + 100 * 4.0) / 1e6
    summary = done.stdout
    assert f"{cost:.6f}" in summary
    assert "InternalServerError" in summary
    assert "member a/test-model" in summary and "member b/test-model" in summary


def progress_line(proc: subprocess.Popen[str], text: str) -> str:
    """The first plain progress line holding ``text`` (one comes every --progress-every)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    seen = []
    for line in proc.stdout:
        if text in line:
            return line
        seen.append(line)
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no progress line with {text!r}; the last ones:\n{seen[-3:]}")


def test_a_provider_stopped_mid_run_hands_its_calls_to_the_other_member(
    other: LLMTestServer, tmp_path: Path
) -> None:
    with LLMTestServer() as first:
        first.handler = lambda req: Reply(text="a: " + req.last_user_text)
        other.default = Fault("stall_after_headers", seconds=60)
        config = group_file(tmp_path, first, other)
        src = write_input(tmp_path / "in.jsonl", 60)
        out = tmp_path / "out.jsonl"
        args = ["batch", "-c", config, "-m", "both", src, "-o", out, "--max-in-flight", "4"]
        proc = subprocess.Popen(
            [*LLMPLUG, *map(str, args), "--progress-every", "0.05"],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # b holds every slot: 4 calls stalled there, none elsewhere.
            other.wait_for_requests(4, timeout=30)
            first.stop()  # provider a goes away mid-run
            line = progress_line(proc, "[b/test-model closed, in flight 4,")
            assert "members [a/test-model closed, in flight 0, budget 600,000 req/min" in line
            assert "keys key-" in line
            other.default = Reply(text="b answered")
            other.release_stalls()
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    ids = [line["custom_id"] for line in output_lines(out)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(60))  # nothing lost, nothing twice
    assert all(check_line(line).error is None for line in output_lines(out))
    # a's circuit opened once its calls failed over: the summary says so.
    member_a = next(x for x in stdout.splitlines() if "member a/test-model" in x)
    assert ", open " in member_a


def test_redis_gives_every_member_of_a_group_the_shared_budget(
    server: LLMTestServer, other: LLMTestServer, tmp_path: Path
) -> None:
    """--redis reaches the models a group is made of (nothing is sent to Redis until a call)."""
    config = group_file(tmp_path, server, other)
    models = load_models(str(config), "redis://127.0.0.1:1")
    group = models.groups["both"]
    kinds = [getattr(m.llm, "rate_limiter", None) for m in group.members]
    assert [getattr(k, "kind", None) for k in kinds] == ["redis", "redis"]


def test_on_a_terminal_the_live_view_has_a_row_per_member(
    server: LLMTestServer, other: LLMTestServer, tmp_path: Path, tmux: Callable[..., str]
) -> None:
    server.default = Error(status=503, message="overloaded")  # a's calls all fail over
    config = group_file(tmp_path, server, other, failure_threshold=2)
    src = write_input(tmp_path / "in.jsonl", 30)
    screen = batch_on_terminal(tmux, tmp_path, config, "both", src)
    assert "done 30" in screen and "failed 0" in screen  # the live view's last frame
    for column in ("member", "circuit", "in flight", "rpm budget", "key", "state"):
        assert column in screen
    # The members table's rows, then the keys table's (a member's name on its first key).
    rows = [line.split() for line in screen.splitlines() if line.startswith(" a/test-model")]
    assert rows[0][1] == "open" and rows[0][-2] == "600,000"  # a's circuit opened
    assert rows[1][1].startswith("key-") and rows[1][2] == "ok"
    assert "member a/test-model" in screen and "cost" in screen  # the summary table
    assert len(output_lines(tmp_path / "out.jsonl")) == 30


def down_for(requests: int, name: str) -> Any:
    """A provider whose first ``requests`` requests get a 503 (an outage), then answers."""
    seen = [0]

    def handler(req: RecordedRequest) -> Reply | Error:
        seen[0] += 1
        if seen[0] <= requests:
            return Error(status=503, message=f"{name} is down")
        return Reply(text=f"{name}: {req.last_user_text}")

    return handler


def test_an_outage_of_every_member_is_waited_out_not_written_as_errors(
    server: LLMTestServer, other: LLMTestServer, tmp_path: Path
) -> None:
    # Both providers go down together: every circuit opens. The lines still to come wait for a
    # member to come back (as a single model waits for a key), rather than each failing at once
    # with NoMemberAvailableError.
    server.handler = down_for(6, "a")
    other.handler = down_for(6, "b")
    config = group_file(tmp_path, server, other, failure_threshold=1, cooldown=0.2)
    src = write_input(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    done = run("batch", "-c", config, "-m", "both", src, "-o", out, "--max-in-flight", "4")
    lines = [check_line(raw) for raw in output_lines(out)]
    assert sorted(line.custom_id for line in lines) == sorted(f"r{i}" for i in range(60))
    failed = [line for line in lines if line.error is not None]
    # Only calls a provider refused fail: each took at least two of the twelve refusals (a
    # member's own retry), whether it met both members or was a circuit's half-open trial.
    assert len(failed) <= 6, [line.error for line in failed]
    assert all(line.response and line.response.status_code == 503 for line in failed)
    assert "NoMemberAvailableError" not in done.stdout + done.stderr
