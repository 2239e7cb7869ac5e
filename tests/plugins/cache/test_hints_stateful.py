"""Sequences of calls through two interfaces on one cache file (two stores: as two processes),
by chat() and by stream, refreshes, writes and looks in between, questions that share their
hint and questions that do not: every call is a hit exactly when an identical question's answer
was stored before it, and a miss sends its own question. Hints, keys made on the loop or by the
writer thread, answers waiting or written, chat() and streams, one store or another: whichever
way a call goes, it must not matter."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from llmplug import APIKeyPool, OpenAICompatible
from llmplug.testing import LLMTestServer

Question = tuple[str, float]

#: Two last messages and two temperatures: four questions, two hints.
QUESTIONS: list[Question] = [(text, t) for text in ("alpha", "beta") for t in (0.1, 0.9)]


class TwoProcesses(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory()
        db = Path(self.dir.name) / "c.db"
        other = Path(self.dir.name) / "other.db"
        other.symlink_to(db)  # another path to the file: a store of its own
        self.server = LLMTestServer()
        self.loop.run_until_complete(self.server.__aenter__())
        self.llms = [self._interface(str(db)), self._interface(str(other))]
        #: By process: the questions whose answers it kept (waiting or written), those it
        #: wrote for sure (a flush of its own: its writer thread may write before, unseen), and
        #: those of the other's it must know (written before its last look).
        self.kept: list[set[Question]] = [set(), set()]
        self.written: list[set[Question]] = [set(), set()]
        self.known: list[set[Question]] = [set(), set()]
        self.sent = 0  # the requests the calls said they sent

    def _interface(self, path: str) -> OpenAICompatible:
        return OpenAICompatible(
            APIKeyPool(["sk-1"], "p", shared=False),
            "m",
            self.server.base_url,
            max_retries=0,
            rate_limit_capacity=1e9,
            rate_limit_refill_rate=1e9,
            cache={"path": path},
        )

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _store(self, which: int) -> Any:
        return self.llms[which].call_wrapper.shared.store  # type: ignore[union-attr]

    def _hits(self, which: int, question: Question) -> set[bool]:
        """What a call may be: a hit for sure (its own answer, or one it learned of), a miss for
        sure (nobody's), or either (the other's, which its writer thread may have written and
        this one's may have looked at, on their own)."""
        if question in self.kept[which] or question in self.known[which]:
            return {True}
        return {True, False} if question in self.kept[1 - which] else {False}

    def _expect(self, which: int, question: Question, cached: bool, text: str) -> None:
        assert cached in self._hits(which, question), (which, question, cached)
        assert text == f"echo: {question[0]}"
        if not cached:
            self.sent += 1
            sent = self.server.requests[-1].json
            assert (sent["messages"][-1]["content"], sent["temperature"]) == question
        self.kept[which].add(question)

    @rule(which=st.integers(0, 1), question=st.sampled_from(QUESTIONS), stream=st.booleans())
    def ask(self, which: int, question: Question, stream: bool) -> None:
        text, t = question
        llm = self.llms[which]
        if stream:
            events = self._run(_collect(llm.chat_stream(text, temperature=t)))
            done = events[-1].completion
            self._expect(which, question, done.cached, done.text)
        else:
            c = self._run(llm.chat(text, temperature=t))
            self._expect(which, question, c.cached, c.text)

    @rule(which=st.integers(0, 1), question=st.sampled_from(QUESTIONS))
    def refresh(self, which: int, question: Question) -> None:
        text, t = question
        c = self._run(self.llms[which].chat(text, temperature=t, cache="refresh"))
        assert not c.cached
        self.sent += 1
        self.kept[which].add(question)

    @rule(which=st.integers(0, 1), question=st.sampled_from(QUESTIONS))
    def at_once(self, which: int, question: Question) -> None:
        """The same question twice at once: one request at most."""
        text, t = question
        llm = self.llms[which]
        both = self._run(_together(llm.chat(text, temperature=t), llm.chat(text, temperature=t)))
        asked = sum(not c.cached for c in both)
        assert asked in {0 if hit else 1 for hit in self._hits(which, question)}
        self.sent += asked
        self.kept[which].add(question)

    @rule(which=st.integers(0, 1))
    def writes(self, which: int) -> None:
        self._store(which).flush()
        self.written[which] |= self.kept[which]

    @rule(which=st.integers(0, 1))
    def looks(self, which: int) -> None:
        self._store(which).sync()  # (it writes first)
        self.written[which] |= self.kept[which]
        self.known[which] |= self.written[1 - which]

    @invariant()
    def each_miss_sent_one_request(self) -> None:
        assert len(self.server.requests) == self.sent

    def teardown(self) -> None:
        for llm in self.llms:
            self._run(llm.aclose())
        self._run(self.server.__aexit__(None, None, None))
        self.loop.close()
        self.dir.cleanup()


async def _together(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls))


async def _collect(events: Any) -> list[Any]:
    return [e async for e in events]


TwoProcesses.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_two_processes_hints_and_keys = TwoProcesses.TestCase
