"""``llmplug batch`` against bytes as they come: provider bodies with a BOM, newlines, bytes
that are not UTF-8 or not JSON; an input with a BOM or a repeated id; an output that cannot be
written. Every output line stays one line of valid JSON, and a resumed run redoes nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmplug.testing import LLMTestServer, Raw, RecordedRequest

from ._run import LLMPLUG, env, provider_file, run
from .test_batch import batch_line, check_line, write_input

BOM = b"\xef\xbb\xbf"


def chat_body(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        **extra,
    }


def strict_lines(path: Path) -> list[dict[str, Any]]:
    """The output as a strict reader takes it: UTF-8, and one JSON value per line for every
    line break Python knows (U+2028 included), not only LF."""
    text = path.read_bytes().decode("utf-8")
    assert text.endswith("\n") or not text
    return [json.loads(line) for line in text.splitlines()]


def serve(server: LLMTestServer, bodies: dict[str, Raw]) -> None:
    """Each request gets the reply given for its prompt ("q3" -> bodies["q3"])."""

    def handler(req: RecordedRequest) -> Raw:
        return bodies[req.last_user_text]

    server.handler = handler


def run_batch(config: Path, src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    done = run("batch", "-c", config, "-m", "local/test-model", src, "-o", out)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def raw(body: bytes) -> Raw:
    return Raw(body=body, content_type="application/json")


ODD_BODIES = {
    "bom": BOM + json.dumps(chat_body()).encode(),
    "bom and newlines": BOM + json.dumps(chat_body(), indent=2).encode(),
    "crlf": json.dumps(chat_body(), indent=1).replace("\n", "\r\n").encode(),
    # Bytes that are not UTF-8 in a field the parser does not read: the answer is good.
    "not utf-8": json.dumps(chat_body(note="@@")).encode().replace(b"@@", b"\xff\xfe"),
    # Valid JSON and UTF-8, yet a line break to str.splitlines() and to JavaScript.
    "line separators": json.dumps(chat_body("a\u2028b\u2029c\x85d"), ensure_ascii=False).encode(),
}


@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_an_answer_in_odd_bytes_is_one_json_line_and_resumes(
    server: LLMTestServer, tmp_path: Path, body: bytes
) -> None:
    server.default = raw(body)
    config = provider_file(tmp_path, server)
    src = write_input(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    done = run_batch(config, src, out)
    assert done.returncode == 0, done.stderr
    lines = strict_lines(out)
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    for line in lines:
        answer = check_line(line).response
        assert answer is not None
        content = answer.body["choices"][0]["message"]["content"]
        assert (
            content
            == json.loads(body.decode("utf-8", "replace").lstrip("\ufeff"))["choices"][0][
                "message"
            ]["content"]
        )
    before = out.read_bytes()
    again = run_batch(config, src, out)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 3  # nothing answered is asked again
    assert out.read_bytes() == before
    assert "already in the output" in again.stdout


def test_an_input_with_a_bom_runs_its_first_line_under_its_own_id(
    server: LLMTestServer, tmp_path: Path
) -> None:
    config = provider_file(tmp_path, server)
    src = tmp_path / "in.jsonl"
    src.write_bytes(BOM + (batch_line(0) + "\n" + batch_line(1) + "\n").encode())
    out = tmp_path / "out.jsonl"
    done = run_batch(config, src, out)
    assert done.returncode == 0, done.stderr
    assert sorted(line["custom_id"] for line in strict_lines(out)) == ["r0", "r1"]
    assert all(check_line(line).error is None for line in strict_lines(out))
    # The same from stdin.
    piped = run(
        "batch",
        "-c",
        config,
        "-m",
        "local/test-model",
        "-",
        "-o",
        "-",
        stdin=(BOM + batch_line(7).encode()).decode(),
    )
    assert piped.returncode == 0, piped.stderr
    (line,) = [json.loads(x) for x in piped.stdout.splitlines()]
    assert line["custom_id"] == "r7" and line["error"] is None


def test_a_repeated_custom_id_is_refused_before_anything_is_sent(
    server: LLMTestServer, tmp_path: Path
) -> None:
    config = provider_file(tmp_path, server)
    src = tmp_path / "in.jsonl"
    plain = json.dumps({"id": "r2", "prompt": "again"})
    src.write_text("\n".join([batch_line(1), batch_line(2), "", batch_line(3), plain]) + "\n")
    out = tmp_path / "out.jsonl"
    done = run_batch(config, src, out)
    assert done.returncode == 2  # bad input, as the CLI's other input errors
    assert done.stderr.startswith("llmplug: error: ") and len(done.stderr.splitlines()) == 1
    assert "lines 2 and 5 have the same custom_id 'r2'" in done.stderr
    assert "nothing was sent" in done.stderr
    assert server.requests == []
    assert not out.exists() or out.read_bytes() == b""
    # From stdin too, before the first request.
    piped = run(
        "batch", "-c", config, "-m", "local/test-model", "-", "-o", "-", stdin=src.read_text()
    )
    assert piped.returncode == 2 and "lines 2 and 5" in piped.stderr
    assert piped.stdout == "" and server.requests == []


def test_an_id_that_an_unreadable_line_would_take_is_a_repeat_too(
    server: LLMTestServer, tmp_path: Path
) -> None:
    """Line 1 cannot be read, so its error line is written as ``line-1``; a request whose id
    is ``line-1`` would be skipped by every resume after it."""
    config = provider_file(tmp_path, server)
    src = tmp_path / "in.jsonl"
    src.write_text("{oops\n" + json.dumps({"id": "line-1", "prompt": "x"}) + "\n")
    done = run_batch(config, src, tmp_path / "out.jsonl")
    assert done.returncode == 2
    assert "lines 1 and 2 have the same custom_id 'line-1'" in done.stderr
    assert "line 1 cannot be read" in done.stderr
    assert server.requests == []


def test_a_reader_that_goes_away_is_not_a_silent_success(
    server: LLMTestServer, tmp_path: Path
) -> None:
    config = provider_file(tmp_path, server)
    src = write_input(tmp_path / "in.jsonl", 20)
    proc = subprocess.Popen(
        [*LLMPLUG, "batch", "-c", str(config), "-m", "local/test-model", str(src), "-o", "-"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader (`| head -0`) is gone before the first line
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2, stderr
    assert "-: cannot write the output: Broken pipe" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_a_full_disk_is_an_error_not_a_hang(server: LLMTestServer, tmp_path: Path) -> None:
    """/dev/full: every write fails with ENOSPC (and reading it gives zeros without end, so
    the output must not be read back for a resume)."""
    config = provider_file(tmp_path, server)
    src = write_input(tmp_path / "in.jsonl", 5)
    done = run_batch(config, src, Path("/dev/full"))
    assert done.returncode == 2
    assert "/dev/full: cannot write the output: No space left on device" in done.stderr


def test_an_output_that_cannot_be_opened_is_one_line(server: LLMTestServer, tmp_path: Path) -> None:
    config = provider_file(tmp_path, server)
    src = write_input(tmp_path / "in.jsonl", 1)
    done = run_batch(config, src, tmp_path)  # a directory
    assert done.returncode == 2
    assert done.stderr == f"llmplug: error: {tmp_path}: cannot write the output: Is a directory\n"
    assert server.requests == []


# -- any bytes at all ----------------------------------------------------------------------------

_plain_bytes = st.binary(max_size=40).map(lambda b: b.replace(b'"', b"").replace(b"\\", b""))


@st.composite
def bodies(draw: st.DrawFn) -> Raw:
    """A reply: arbitrary bytes, or a Chat body made odd (a BOM, newlines, bytes that are not
    UTF-8 in a string, Unicode line breaks), with a 200 or an error status."""
    if draw(st.booleans()):
        body = draw(st.binary(max_size=120))
    else:
        text = json.dumps(
            chat_body(draw(st.text(max_size=20)), note="@@"),
            ensure_ascii=draw(st.booleans()),
            indent=draw(st.sampled_from([None, 0, 2])),
        ).encode()
        body = text.replace(b"@@", draw(_plain_bytes))
        if draw(st.booleans()):
            body = body.replace(b"\n", b"\r\n")
        if draw(st.booleans()):
            body = BOM + body
    status = draw(st.sampled_from([200, 200, 200, 400, 422]))
    return Raw(status=status, body=body, content_type="application/json")


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(replies=st.lists(bodies(), min_size=1, max_size=10))
def test_any_provider_bytes_make_json_lines_and_resume_redoes_nothing_answered(
    server: LLMTestServer, tmp_path_factory: pytest.TempPathFactory, replies: list[Raw]
) -> None:
    server.clear()
    tmp = tmp_path_factory.mktemp("bytes")
    serve(server, {f"q{i}": reply for i, reply in enumerate(replies)})
    config = provider_file(tmp, server)
    src = write_input(tmp / "in.jsonl", len(replies))
    out = tmp / "out.jsonl"
    done = run_batch(config, src, out)
    assert done.returncode in (0, 1), done.stderr
    lines = strict_lines(out)
    assert sorted(line["custom_id"] for line in lines) == sorted(
        f"r{i}" for i in range(len(replies))
    )
    for line in lines:
        check_line(line)
    asked, before = len(server.requests), out.read_bytes()
    again = run_batch(config, src, out)
    assert again.returncode == 0, again.stderr  # nothing was left to do, so nothing failed
    assert len(server.requests) == asked
    assert out.read_bytes() == before
