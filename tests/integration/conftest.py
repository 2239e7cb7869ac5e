"""Fixtures for tests against real peers nobody here wrote: the LiteLLM proxy and llama.cpp's
llama-server.

``scripts/test`` starts the proxy and exports ``LLMPLUG_LITELLM_URL``, and builds llama-server
(cached outside the tree), which the ``llama_server`` fixture starts. Without them the tests are
skipped locally, but fail in CI (``CI=true``), so CI can never silently skip them."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from llmplug import APIKeyPool, LLMInterface, OpenAICompatible

MakeLiteLLM = Callable[..., Any]


@pytest.fixture(scope="session")
def litellm_url() -> str:
    """The LiteLLM proxy's OpenAI base URL (ending in ``/v1``)."""
    url = os.environ.get("LLMPLUG_LITELLM_URL", "").strip()
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(
                "LLMPLUG_LITELLM_URL is not set: CI must run the LiteLLM integration tests "
                "(run them through scripts/test, which starts the proxy)"
            )
        pytest.skip("LLMPLUG_LITELLM_URL is not set (scripts/test starts LiteLLM and sets it)")
    return url


@pytest.fixture
async def make_litellm(litellm_url: str) -> AsyncIterator[MakeLiteLLM]:
    """Build interfaces on the proxy: fast retries and a limiter that does not pace, unless a
    test asks otherwise (``interface=OpenAIResponsesCompatible`` for the Responses API). All
    are closed after the test."""
    made: list[LLMInterface] = []

    def make(keys: list[str] | None = None, model: str = "fake", **kw: Any) -> Any:
        strategy: str = kw.pop("strategy", "round_robin")
        cls: type[LLMInterface] = kw.pop("interface", OpenAICompatible)
        opts: dict[str, Any] = {
            "base_url": litellm_url,
            "max_retries": 2,
            "retry_delay": 0.001,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000.0,
            "key_wait_timeout": 1.0,
        }
        opts.update(kw)
        pool = APIKeyPool(keys or ["sk-test-a"], "litellm", strategy=strategy, shared=False)
        llm = cls(api_key_pool=pool, model_name=model, **opts)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


# -- llama.cpp's llama-server: real inference with a tiny model the tests write ------------------

LLAMA_VERSION = "0.3.36"  # the llama-cpp-python sdist whose vendored llama.cpp is built
LLAMA_KEY = "sk-llama-test"
LLAMA_MODEL = "tiny"


class LlamaServer(NamedTuple):
    """A running llama-server: its base URL (ending in ``/v1``) and the lines it logged."""

    base_url: str
    log: list[str]


def _llama_binary() -> Path:
    explicit = os.environ.get("LLMPLUG_LLAMA_SERVER", "").strip()
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llmplug" / f"llama-server-{LLAMA_VERSION}" / "llama-server"


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """llama-server on a port of its own choosing, serving the tiny model as ``tiny`` with the
    key ``LLAMA_KEY``; stopped after the session. ``scripts/test`` builds the binary (see
    tests/servers/llama/build.sh); without it the tests skip locally and fail in CI."""
    with _run_llama(tmp_path_factory, 0) as server:
        yield server


def llama_litellm_port() -> int:
    """The fixed port of the llama-server behind LiteLLM's ``llama-*`` models: the proxy reads
    its config once, at start, so the address must be known before any test runs.
    tests/servers/litellm/start.sh writes the same port into the config it starts with."""
    return int(os.environ.get("LLMPLUG_LLAMA_LITELLM_PORT", "").strip() or "4012")


@pytest.fixture(scope="session")
def llama_behind_litellm(
    litellm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """llama-server on ``llama_litellm_port()``, the upstream of LiteLLM's ``llama-gemini``
    model (see tests/servers/litellm/config_customauth.yaml); stopped after the session."""
    with _run_llama(tmp_path_factory, llama_litellm_port()) as server:
        yield server


@contextlib.contextmanager
def _run_llama(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[LlamaServer]:
    binary = _llama_binary()
    template = binary.parent / "Qwen-Qwen2.5-7B-Instruct.jinja"
    if not (binary.is_file() and template.is_file()):
        message = (
            f"no llama-server at {binary} (or no chat template beside it): "
            "run tests/servers/llama/build.sh"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from .llama_model import write_model  # numpy and gguf load only when the server starts

    model = write_model(tmp_path_factory.mktemp("llama") / "tiny.gguf")
    args = [
        str(binary), "-m", str(model), "-a", LLAMA_MODEL, "--api-key", LLAMA_KEY,
        "--jinja", "--chat-template-file", str(template), "--no-webui", "-c", "2048",
        "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    )  # fmt: skip
    log: list[str] = []
    listening: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        # The server logs its address only once the model is loaded (port 0: it picks one).
        # Reading on after that keeps its pipe from filling up.
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            found = _LISTENING.search(line)
            if found and not ready.is_set():
                listening.append(found.group(1))
                ready.set()
        ready.set()  # exited: wake the fixture, which sees no address

    reader = threading.Thread(target=drain, name="llama-server-log", daemon=True)
    reader.start()
    try:
        if not ready.wait(120) or not listening:
            pytest.fail(f"llama-server did not start on port {port}:\n" + "".join(log[-40:]))
        base = listening[0]
        with urllib.request.urlopen(f"{base}/health", timeout=10) as health:
            assert health.status == 200, health.status
        yield LlamaServer(f"{base}/v1", log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()


_LISTENING = re.compile(r"listening on (http://\S+)")


@pytest.fixture
async def make_llama(llama_server: LlamaServer) -> AsyncIterator[MakeLiteLLM]:
    """Build interfaces on llama-server (``interface=`` or ``wire=`` to pick the wire): no
    retries (random weights answer every request) and a limiter that does not pace."""
    made: list[LLMInterface] = []

    def make(key: str = LLAMA_KEY, **kw: Any) -> Any:
        cls: type[LLMInterface] = kw.pop("interface", OpenAICompatible)
        opts: dict[str, Any] = {
            "base_url": llama_server.base_url,
            "max_retries": 0,
            "rate_limit_capacity": 10_000,
            "rate_limit_refill_rate": 10_000.0,
            "key_wait_timeout": 1.0,
        }
        opts.update(kw)
        pool = APIKeyPool([key], "llama", shared=False)
        llm = cls(api_key_pool=pool, model_name=LLAMA_MODEL, **opts)
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()
