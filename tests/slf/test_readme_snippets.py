"""Every Python block of SimpleLLMFunc's READMEs (0.7.8 and 0.8.4, MIT-licensed, kept with
their LICENSE in readme_078/ and readme_084/), run with only ``SimpleLLMFunc`` ->
``llmplug.slf`` against the test server, printing what SimpleLLMFunc prints for the same
replies. The blocks left out use what llmplug leaves out (TUI, PyRepl, FileToolset,
SelfReference forks); each says so."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llmplug.testing import LLMTestServer, Reply

from ._snippets import blocks, run, substitute, workdir

REVIEW = json.dumps(
    {
        "rating": 4,
        "pros": ["Great sound quality"],
        "cons": ["Unstable connection"],
        "summary": "Good value",
    }
)
ENTITIES = json.dumps({"person": ["John"], "location": ["Beijing"], "organization": ["Apple"]})
# What the model answers SimpleLLMFunc, which asks for XML where llmplug asks for JSON: the
# replies the recorded outputs were checked with on SimpleLLMFunc itself.
REVIEW_XML = (
    "<ProductReview><rating>4</rating><pros><item>Great sound quality</item></pros>"
    "<cons><item>Unstable connection</item></cons><summary>Good value</summary></ProductReview>"
)
ENTITIES_XML = (
    "<result><person><item>John</item></person><location><item>Beijing</item></location>"
    "<organization><item>Apple</item></organization></result>"
)


@dataclass
class Case:
    replies: list[Reply] = field(default_factory=list)
    stdout: str = ""
    before: tuple[int, ...] = ()
    out_of_scope: str = ""
    #: The block fails in SimpleLLMFunc itself the same way (a README error).
    raises: type[BaseException] | None = None
    #: The replies SimpleLLMFunc itself got (XML where llmplug's are JSON), if they differ.
    slf_replies: list[Reply] | None = None
    #: Requests the block makes, when not one per scripted reply (unscripted ones echo).
    requests: int | None = None


TUI = "the TUI (@tui) is out of scope: print the event stream, see the guide"
REPL = "PyRepl and FileToolset are out of scope: write the tools you need with @tool"
SELFREF = "SelfReference (memory, forks) is out of scope: keep and pass the history"

CASES: dict[tuple[str, int], Case] = {
    # -- 0.8.4 --
    ("084", 1): Case(out_of_scope=f"{TUI}; {REPL}; {SELFREF}"),
    ("084", 3): Case([Reply(text="positive")], "Sentiment: positive\n"),
    ("084", 8): Case(
        [Reply(text=REVIEW)], "4\n['Great sound quality']\n", slf_replies=[Reply(text=REVIEW_XML)]
    ),
    # 0.8.4 itself raises here (its ResponseYield does not unpack); this is what 0.7.8 prints
    ("084", 9): Case([Reply(text="Hello!", chunks=["Hel", "lo!"])], "\nHel\nlo!\n\n\n\n"),
    ("084", 10): Case(out_of_scope=TUI),
    ("084", 11): Case(),
    ("084", 12): Case([Reply(text="Two cats."), Reply(text="A cat.")]),
    ("084", 13): Case(),
    ("084", 14): Case([Reply(text="Done.")]),
    ("084", 15): Case(),
    ("084", 17): Case(),
    ("084", 18): Case(out_of_scope=REPL),
    ("084", 19): Case(out_of_scope=REPL),
    ("084", 20): Case([Reply(text="a"), Reply(text="b")]),
    ("084", 21): Case([Reply(text=ENTITIES)], slf_replies=[Reply(text=ENTITIES_XML)]),
    ("084", 22): Case(out_of_scope=f"{REPL}; {SELFREF}"),
    ("084", 23): Case([Reply(text="a"), Reply(text="b")]),
    ("084", 24): Case(),
    # -- 0.7.8 --
    ("078", 4): Case([Reply(text="positive")], "Sentiment classification: positive\n"),
    (
        "078",
        5,
    ): Case(
        [Reply(text=REVIEW)],
        "\n===== Product Review Analysis =====\nRating: 4/5\nAdvantages:\n"
        "- Great sound quality\nDisadvantages:\n- Unstable connection\nSummary: Good value\n",
        slf_replies=[Reply(text=REVIEW_XML)],
    ),
    ("078", 7): Case(out_of_scope=TUI),
    ("078", 8): Case(out_of_scope=f"{SELFREF} (the block reads fork origins of block 7's agent)"),
    ("078", 9): Case(),
    ("078", 10): Case(),
    ("078", 11): Case([Reply(text="They differ.")], "They differ.\n"),
    ("078", 12): Case([Reply(text="Done.")]),
    ("078", 13): Case(),
    ("078", 15): Case(),
    ("078", 17): Case(),
    ("078", 18): Case(),
    ("078", 19): Case(),
    ("078", 20): Case(),
    ("078", 21): Case(before=(18, 20)),
    ("078", 25): Case([Reply(text=ENTITIES)], slf_replies=[Reply(text=ENTITIES_XML)]),
    # `response = await agent(...)` awaits an async generator: a README error, the same
    # TypeError in SimpleLLMFunc.
    ("078", 26): Case(raises=TypeError),
    ("078", 27): Case(requests=4),  # three texts and the `...` of the README's list
    ("078", 28): Case(),
}


def test_every_block_is_listed() -> None:
    listed = set(CASES)
    found = {(v, i) for v in ("078", "084") for i in blocks(v)}
    assert listed == found


@pytest.mark.parametrize("key", sorted(k for k, c in CASES.items() if not c.out_of_scope))
def test_readme_block(key: tuple[str, int], server: LLMTestServer, tmp_path: Path) -> None:
    version, index = key
    case = CASES[key]
    workdir(tmp_path, server)
    server.push(*case.replies)
    code = substitute(blocks(version)[index])
    before = tuple(substitute(blocks(version)[i]) for i in case.before)
    if case.raises is not None:
        with pytest.raises(case.raises):
            run(code, tmp_path, before)
        return
    assert run(code, tmp_path, before) == case.stdout
    expected = case.requests if case.requests is not None else len(case.replies)
    assert len(server.requests) == expected
