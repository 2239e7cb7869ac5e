"""The KeyHealth seam: what a pool tells a shared-health backend, and what it takes back."""

from __future__ import annotations

from collections.abc import Callable

from llmplug import APIKeyPool, OpenAICompatible, SharedKeyState
from llmplug.testing import Error, LLMTestServer

MakeLLM = Callable[..., OpenAICompatible]


class Recorder:
    """A KeyHealth that keeps what it is told (a backend would send it elsewhere)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    def leased(self, fingerprint: str) -> None:
        self.seen.append(("leased", fingerprint))

    def released(self, fingerprint: str) -> None:
        self.seen.append(("released", fingerprint))

    def cooled(self, fingerprint: str, seconds: float, reason: str, disable: bool) -> None:
        self.seen.append(("cooled", fingerprint, reason, str(disable)))


async def test_the_pool_tells_its_health_backend_by_fingerprint_only(
    server: LLMTestServer, make_llm: MakeLLM
) -> None:
    server.push(Error(status=401, message="Invalid API key"), key="sk-bad")
    pool = APIKeyPool(["sk-bad", "sk-good"], "test", shared=False)
    health = Recorder()
    pool.attach_health(health)
    llm = make_llm(api_key_pool=pool)
    await llm.chat("hi")
    bad, good = pool.fingerprints
    assert health.seen == [
        ("leased", bad),
        ("released", bad),  # the attempt's books close before the policy decides
        ("cooled", bad, "HTTP 401: Invalid API key", "True"),
        ("leased", good),
        ("released", good),
    ]
    assert "sk-" not in repr(health.seen)


def test_the_shared_view_joins_the_pool_books() -> None:
    pool = APIKeyPool(["sk-1", "sk-2"], "test", shared=False)
    pool.attach_health(Recorder())
    one, two = pool.fingerprints
    held = pool.lease(1)
    pool.apply_shared(
        {
            one: SharedKeyState(30.0, "rate limited (429)", False, 0),
            two: SharedKeyState(0.0, None, False, 4),
        }
    )
    status = pool.status()
    assert status[0]["state"] == "cooling" and status[0]["cooldown_reason"] == "rate limited (429)"
    assert pool.healthy() == [1]
    assert pool.in_flight(1) == 5 and status[1]["in_flight"] == 5  # 4 elsewhere, 1 here
    held.release()
    pool.apply_shared({})  # nobody else holds any now
    assert pool.in_flight(1) == 0
    pool.attach_health(None)
    assert pool.health is None
