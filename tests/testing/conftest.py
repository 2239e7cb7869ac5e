"""The test server's own tests each get a server of their own, not the suite's shared one:
some stop it or count its connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmplug.testing import LLMTestServer


@pytest.fixture
def server() -> Iterator[LLMTestServer]:
    with LLMTestServer() as srv:
        yield srv
