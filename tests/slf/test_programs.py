"""Programs written against SimpleLLMFunc's event API, run with ``llmplug.slf``: their output
equals what SimpleLLMFunc 0.8.4 itself printed for the same server replies (recorded in
programs/*.084.txt; 0.8.4 streams events without being asked, llmplug.slf with 0.7.8's
``enable_event=True``, the one line that differs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmplug.testing import LLMTestServer, Reply, ToolCallReply

from ._snippets import run, substitute, workdir

PROGRAMS = Path(__file__).parent / "programs"


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_event_printer(stream: bool, server: LLMTestServer, tmp_path: Path) -> None:
    server.push(
        Reply(tool_calls=[ToolCallReply(name="calculator", arguments={"expression": "2+2"})]),
        Reply(text="It is 4.", chunks=["It ", "is ", "4."]),
    )
    workdir(tmp_path, server)
    code = (PROGRAMS / "event_printer.py.in").read_text().replace("STREAM", str(stream))
    name = "stream" if stream else "nostream"
    expected = (PROGRAMS / f"event_printer.{name}.084.txt").read_text()
    got = run(substitute(code), tmp_path)
    assert got == expected


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
@pytest.mark.parametrize("mode", ["text", "raw"])
def test_pairs_printer(stream: bool, mode: str, server: LLMTestServer, tmp_path: Path) -> None:
    """0.7.8's ``async for response, history in agent(...)``, text and raw, printing what
    SimpleLLMFunc 0.7.8 printed (programs/pairs.*.078.txt)."""
    server.push(
        Reply(tool_calls=[ToolCallReply(name="calculator", arguments={"expression": "2+2"})]),
        Reply(text="It is 4.", chunks=["It ", "is ", "4."]),
    )
    workdir(tmp_path, server)
    extra = ", return_mode='raw'" if mode == "raw" else ""
    code = (PROGRAMS / "pairs.py.in").read_text().replace("STREAM", str(stream))
    name = f"{'stream' if stream else 'nostream'}.{mode}"
    expected = (PROGRAMS / f"pairs.{name}.078.txt").read_text()
    if name == "stream.text":
        # The one deliberate difference: 0.7.8's last streamed pair leaves the final reply
        # out of the history; llmplug.slf's history holds it, so the next turn sees it.
        head, last = expected.rstrip("\n").rsplit("\n", 1)
        assert last == "'' ['system', 'user', 'assistant', 'tool']"
        expected = f"{head}\n'' ['system', 'user', 'assistant', 'tool', 'assistant']\n"
    assert run(substitute(code.replace("EXTRA", extra)), tmp_path) == expected


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "nostream"])
def test_raw_tool_calls(stream: bool, server: LLMTestServer, tmp_path: Path) -> None:
    """0.7.8's ``return_mode="raw"``: the OpenAI SDK objects' reprs, tool call deltas, usage,
    and the history's assistant and tool messages, as SimpleLLMFunc 0.7.8 printed them."""
    server.push(
        Reply(tool_calls=[ToolCallReply(name="get_weather", arguments={"city": "Paris"})]),
        Reply(text="Sunny, 28°C.", chunks=["Sunny, ", "28°C."]),
    )
    workdir(tmp_path, server)
    code = (PROGRAMS / "raw_tool_calls.py.in").read_text().replace("STREAM", str(stream))
    name = "stream" if stream else "nostream"
    expected = (PROGRAMS / f"raw_tool_calls.{name}.078.txt").read_text(encoding="utf-8")
    assert run(substitute(code), tmp_path) == expected


def test_event_helpers_get_0_8_4_events(server: LLMTestServer, tmp_path: Path) -> None:
    """0.8.4 code handing an agent's stream to ``events_only``, ``responses_only`` or
    ``with_event_observer`` (no ``enable_event``) prints what SimpleLLMFunc 0.8.4 printed."""
    server.push(
        Reply(text="Hello"), Reply(text="Again"), Reply(text="Hi there", chunks=["Hi", " there"])
    )
    workdir(tmp_path, server)
    code = (PROGRAMS / "events_only.py.in").read_text()
    expected = (PROGRAMS / "events_only.084.txt").read_text()
    assert run(substitute(code), tmp_path) == expected
