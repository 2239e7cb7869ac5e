"""Hostile numbers, as a broken or malicious provider (or a proxy in between) sends them in
headers and bodies: infinities, NaN, negatives, numbers too big for a float, garbage text."""

from __future__ import annotations

import asyncio
import math
import string
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from llmplug import APIKeyPool, LLMInterface, OpenAICompatible
from llmplug.testing import LLMTestServer
from llmplug.wire import MAX_COUNT, MAX_SECONDS

__all__ = [
    "BODY_NUMBER",
    "EXAMPLES",
    "HEADER_NUMBER",
    "MAX_COUNT",
    "MAX_SECONDS",
    "Interfaces",
    "bounded",
    "usage_ok",
]

#: Deterministic (no database, derandomized), no wall-clock deadline; each example is a real
#: call over a real socket, so a few dozen of them.
EXAMPLES = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_SPECIAL = [
    "inf", "-inf", "Infinity", "nan", "NaN", "1e999", "-1e999", "-5", "-0", "-0.001", "1e308",
    "1e300", "9" * 400, "-" + "9" * 400, "abc", "", "1_0", "0x10", "1e-999", "5s", "-1s",
    "99999999999h", "1e999s", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
]  # fmt: skip

#: A header value: printable ASCII (what HTTP carries), numbers of every kind and garbage.
HEADER_NUMBER = st.one_of(
    st.sampled_from(_SPECIAL),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.digits + string.ascii_letters + " .-+_:,", max_size=24),
)

_BODY_SPECIAL = ["1e999", "-1e999", "-5", "1e308", "9" * 400, "1.5", '"12"', '"abc"', "true"]
_BODY_SPECIAL += ["null", "{}", "[]", "-0", "0"]

#: The raw JSON of a number field in a body (a usage count): out of range for a float,
#: negative, huge, fractional, a string, a boolean, an object.
BODY_NUMBER = st.one_of(
    st.sampled_from(_BODY_SPECIAL),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


class Interfaces:
    """One event loop and one interface per key list and wire for the whole module: each
    example starts from a pool with no cooldowns and empty usage books."""

    def __init__(self, server: LLMTestServer) -> None:
        self.server = server
        self.runner = asyncio.Runner()
        self.made: dict[str, Any] = {}

    def get(
        self,
        keys: list[str],
        cls: type[LLMInterface] = OpenAICompatible,
        tag: str = "",
        **options: Any,
    ) -> Any:
        """The interface on ``keys`` of class ``cls`` (``options`` go to its constructor; a
        new ``tag`` makes another one, with books of its own, as another process has)."""
        name = repr((keys, cls, tag, sorted(options.items())))
        llm = self.made.get(name)
        if llm is None:
            llm = self.made[name] = cls(
                APIKeyPool(keys, "hostile", shared=False),
                "m",
                self.server.base_url,
                max_retries=2,
                retry_delay=0.001,
                rate_limit_capacity=10_000,
                rate_limit_refill_rate=10_000.0,
                key_wait_timeout=0.5,
                total_timeout=30.0,
                **options,
            )
        llm.key_pool.reset()
        llm.usage.reset()
        llm.reset_rate_limit()
        return llm

    def close(self) -> None:
        for llm in self.made.values():
            self.runner.run(llm.aclose())
            conn = getattr(llm.rate_limiter, "conn", None)  # llmplug-redis's connection
            if conn is not None:
                self.runner.run(conn.aclose())
        self.runner.close()


def bounded(status: list[dict[str, Any]]) -> None:
    """What ``key_pool.status()`` must show after any reply: finite rests of at most a day,
    nothing in flight."""
    for row in status:
        assert math.isfinite(row["cooldown_seconds"]), row
        assert 0 <= row["cooldown_seconds"] <= MAX_SECONDS, row
        assert row["in_flight"] == 0, row


def usage_ok(usage: Any) -> None:
    """Every count of ``usage`` is an int within [0, MAX_COUNT]."""
    for name in ("input_tokens", "output_tokens", "total_tokens", "cached_tokens"):
        n = getattr(usage, name)
        assert type(n) is int and 0 <= n <= MAX_COUNT, (name, n)
