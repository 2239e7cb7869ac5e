"""A Redis password in the URL (``?password=``, or ``user:pass@``) never shows: not in
``RedisUnavailableError`` (text, repr, chain, pickle), the warning and recovery logs, reprs,
``status()``, nor in what ``llmplug batch --redis`` and ``llmplug chat`` print or write."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.pretty import pretty_repr

from llmplug import APIKeyPool, OpenAICompatible
from llmplug.testing import LLMTestServer
from llmplug_redis import RedisLimiter, RedisUnavailableError
from llmplug_redis._config import parse
from tests.core.cli._run import run
from tests.core.test_redaction import Evidence

from ._redis import RedisServer


def password() -> str:
    return "PW" + secrets.token_hex(10).upper()


def interface(server: LLMTestServer, url: str, prefix: str, **backend: object) -> OpenAICompatible:
    return OpenAICompatible(
        APIKeyPool(["sk-a"], "prov", shared=False),
        "m",
        server.base_url,
        max_retries=0,
        rate_limit_backend={"kind": "redis", "url": url, "prefix": prefix, **backend},
    )


def rl(llm: OpenAICompatible) -> RedisLimiter:
    assert isinstance(llm.rate_limiter, RedisLimiter)
    return llm.rate_limiter


def shown(llm: OpenAICompatible, url: str, ev: Evidence) -> None:
    """Where a user looks at a Redis-backed interface."""
    ev.interface(llm)
    conf = parse({"kind": "redis", "url": url})
    ev.parts += [repr(rl(llm)), repr(rl(llm).status()), repr(conf), pretty_repr(conf)]


def hidden(text: str, *secret: str) -> None:
    assert [s for s in secret if s in text] == [], text[:3000]


@pytest.fixture
def locked() -> Iterator[tuple[RedisServer, str]]:
    """A redis-server with ``requirepass``, and its password."""
    pw = password()
    redis = RedisServer("--requirepass", pw).start()
    yield redis, pw
    redis.close()


async def test_a_wrong_password_in_the_url_is_not_shown(
    server: LLMTestServer, prefix: str, locked: tuple[RedisServer, str]
) -> None:
    redis, _ = locked
    ev = Evidence()
    wrong = password()
    urls = [
        f"redis://127.0.0.1:{redis.port}/0?password={wrong}",
        f"redis://default:{wrong}@127.0.0.1:{redis.port}/0",
        f"redis://127.0.0.1:{redis.port}/0?username=default&password={wrong}&socket_timeout=1",
    ]
    for url in urls:
        llm = interface(server, url, prefix)
        with pytest.raises(RedisUnavailableError) as got:
            await llm.chat("hi")
        assert "AuthenticationError" in str(got.value)  # it did reach Redis and was refused
        assert "127.0.0.1" in str(got.value)  # and says where
        ev.error(got.value)
        shown(llm, url, ev)
        await llm.aclose()
        await rl(llm).conn.aclose()
    assert "?password=***" in ev.text and "redis://***@127.0.0.1" in ev.text
    hidden(ev.text, wrong)


async def test_the_right_password_is_not_shown_in_an_outage_nor_after_it(
    server: LLMTestServer,
    prefix: str,
    locked: tuple[RedisServer, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis, pw = locked
    caplog.set_level(logging.INFO, logger="llmplug.redis")
    url = f"redis://127.0.0.1:{redis.port}/0?password={pw}"
    fails = interface(server, url, prefix, retry_interval=0.05)
    local = interface(server, url, prefix, retry_interval=0.05, on_unavailable="local")
    assert (await fails.chat("hi")).text == "echo: hi"  # the password is right
    redis.stop()
    ev = Evidence()
    with pytest.raises(RedisUnavailableError) as got:
        await fails.chat("down")
    ev.error(got.value)
    assert (await local.chat("down")).text == "echo: down"  # warns, and goes on locally
    redis.start()
    await asyncio.sleep(0.06)  # past retry_interval: the next call tries Redis again
    assert (await local.chat("back")).text == "echo: back"
    for llm in (fails, local):
        shown(llm, url, ev)
        await llm.aclose()
    await rl(fails).conn.aclose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "using a local bucket" in logged and "answers again" in logged
    assert "?password=***" in logged and "?password=***" in str(got.value)
    hidden(logged + ev.text, pw)


def test_the_command_shows_no_redis_password(
    server: LLMTestServer, locked: tuple[RedisServer, str], tmp_path: Path
) -> None:
    redis, pw = locked
    url = f"redis://127.0.0.1:{redis.port}/0?password={pw}"
    redis.stop()  # down: every request fails on it
    entry = {
        "model_name": "m",
        "api_keys": ["sk-a"],
        "base_url": server.base_url,
        "max_retries": 0,
    }
    config = tmp_path / "provider.json"
    config.write_text(json.dumps({"p": [entry]}))
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "prompt": "hi"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    batch = run("batch", "-c", config, "-m", "p/m", src, "-o", out, "--redis", url)
    assert batch.returncode == 1, batch.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["error"]["code"] for x in lines] == ["RedisUnavailableError"] * 3
    assert "?password=***" in lines[0]["error"]["message"]
    # The same URL in provider.json, through `llmplug chat`.
    config.write_text(
        json.dumps({"p": [{**entry, "rate_limit_backend": {"kind": "redis", "url": url}}]})
    )
    chat = run("chat", "-c", config, "-m", "p/m", "hi")
    assert chat.returncode == 4 and "?password=***" in chat.stderr
    hidden(out.read_text() + batch.stdout + batch.stderr + chat.stdout + chat.stderr, pw)
    assert server.requests == []
