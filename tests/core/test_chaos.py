"""The chaos test (issue 17): the state machine of tests/core/_chaos.py over the test server,
with the local bucket. Its Redis variant is tests/plugins/redis/test_chaos.py.

The default budget suits the suite's; ``--hypothesis-profile=soak`` (tests/conftest.py) runs it
for about ten minutes (see CONTRIBUTING.md)."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from llmplug.testing import LLMTestServer

from ._chaos import ChaosMachine


def chaos_settings(examples: int, steps: int) -> settings:
    """The suite's small budget, unless a profile of more (``soak``) is loaded."""
    if settings.get_current_profile_name() == "soak":
        return settings()
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        # No shrinking within the suite's budget (a failure shows its whole run of steps);
        # the soak profile shrinks.
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )


def test_chaos_keeps_every_invariant(server: LLMTestServer) -> None:
    class OnTheServer(ChaosMachine):
        def __init__(self) -> None:
            super().__init__(server)

    run_state_machine_as_test(OnTheServer, settings=chaos_settings(10, 20))
