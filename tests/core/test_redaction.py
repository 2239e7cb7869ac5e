"""Keys never leak: not into logs (stdlib or structlog), nor into any error's text, repr,
traceback, args or pickle, nor into the pool's or the interface's repr and status."""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
import secrets
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from llmplug import (
    APIConnectionError,
    APIKeyPool,
    APITimeoutError,
    ConfigError,
    InternalServerError,
    LLMError,
    LLMInterface,
    NoKeyAvailableError,
    OpenAICompatible,
    RateLimitError,
    StreamError,
    TextDelta,
)
from llmplug.testing import Error, Fault, LLMTestServer, Raw

MakeLLM = Callable[..., OpenAICompatible]


def new_key() -> str:
    # Long and random, with no shared prefix of 8 characters or more ("sk-" is 3), so every
    # 8-character window of a key holds at least 5 random characters and can only show up in
    # the captured text if that part of the key leaked. urlsafe characters, not hex, so a
    # window cannot collide with the hex of a fingerprint or an id by chance.
    return "sk-" + secrets.token_urlsafe(36)


def leaks(text: str, keys: tuple[str, ...]) -> list[str]:
    """Every 8-character piece of a key found in ``text``."""
    return sorted({k[i : i + 8] for k in keys for i in range(len(k) - 7) if k[i : i + 8] in text})


class Evidence:
    """Everything a user could see or ship somewhere: error texts, reprs, pickles, statuses."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.errors: list[BaseException] = []

    def error(self, exc: BaseException) -> None:
        self.errors.append(exc)
        seen: BaseException | None = exc
        while seen is not None:  # the whole chain, suppressed context included
            self.parts += [str(seen), repr(seen), repr(seen.args), repr(vars(seen))]
            seen = seen.__cause__ or seen.__context__
        self.parts.append("".join(traceback.format_exception(exc)))
        blob = pickle.dumps(exc)
        self.parts.append(blob.decode("latin-1"))
        back = pickle.loads(blob)
        self.parts += [str(back), repr(back), repr(vars(back))]

    def interface(self, llm: LLMInterface) -> None:
        pool = llm.key_pool
        self.parts += [repr(llm), repr(pool), repr(pool.status()), pool.describe()]
        self.parts += [repr(pool.fingerprints), repr(llm.get_rate_limit_status())]

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


@pytest.fixture(params=["stdlib", "structlog"])
def logs(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """DEBUG logs of llmplug through the stdlib logger "llmplug", or through an application's
    structlog configuration."""
    buf = io.StringIO()
    if request.param == "stdlib":
        logger = logging.getLogger("llmplug")
        handler = logging.StreamHandler(buf)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        try:
            yield buf
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(file=buf),
        cache_logger_on_first_use=False,
    )
    try:
        yield buf
    finally:
        structlog.reset_defaults()


async def stream_text(llm: LLMInterface) -> str:
    return "".join([e.text async for e in llm.chat_stream("hi") if isinstance(e, TextDelta)])


async def run_scenarios(
    server: LLMTestServer, make_llm: MakeLLM, keys: tuple[str, str, str], tmp: Path, ev: Evidence
) -> None:
    k0, k1, k2 = keys
    llms: list[LLMInterface] = []

    def llm(*use: str, **kw: Any) -> LLMInterface:
        made = make_llm(keys=use, **kw)
        llms.append(made)
        return made

    async def fails(cls: type[LLMError], call: Any) -> None:
        with pytest.raises(cls) as info:
            await call
        ev.error(info.value)

    # Success, plain and streamed.
    ok = llm(k0, k1)
    assert (await ok.chat("hi")).text == "echo: hi"
    assert await stream_text(ok) == "echo: hi"
    # 401 on one key: it is disabled with the server's message as reason, the call rotates.
    server.clear()
    server.push(Error(status=401, message="Incorrect API key provided", code="invalid_api_key"))
    assert (await llm(k0, k1).chat("hi")).text == "echo: hi"
    # A 429 storm on one key of three.
    server.clear()
    storm_429 = Error(status=429, headers={"retry-after": "30"})
    server.handler = lambda r: storm_429 if r.api_key == k2 else None
    storm = llm(k2, k0, k1)
    for _ in range(4):
        await storm.chat("hi")
    # 500s until the retries run out (success and failure on one interface, as in real use).
    server.clear()
    server.default = Error(status=500, message="The server had an error")
    await fails(InternalServerError, ok.chat("hi"))
    # A stream cut after output, and an error event inside a stream.
    server.clear()
    server.push(Fault("cut_stream", after=3), Error(status=502, in_stream_after=2))
    server.push(Raw(chunks=[b"data: {broken\n\n"]))
    for _ in range(3):
        await fails(StreamError, stream_text(ok))
    # A read timeout, and a connection that is refused.
    server.clear()
    server.default = Fault("stall_after_headers", seconds=5)
    await fails(APITimeoutError, llm(k0, timeout=0.2, max_retries=0).chat("hi"))
    await fails(APIConnectionError, llm(k1, base_url="http://127.0.0.1:9/v1").chat("hi"))
    # Every key cooling for a minute: the server's 429, then NoKeyAvailableError.
    server.clear()
    server.default = Error(status=429, message="Rate limit reached", headers={"retry-after": "60"})
    cooling = llm(k0, k1, k2, key_wait_timeout=1.0)
    await fails(RateLimitError, cooling.chat("hi"))
    await fails(NoKeyAvailableError, cooling.chat("hi"))
    server.clear()
    # provider.json with a bad key list: the errors name the file and field, not the keys.
    for i, api_keys in enumerate([[k0, 42], [k1, ""], k2, [k0, None], {"main": k1}]):
        path = tmp / f"bad{i}.json"
        entry = {"model_name": "m", "api_keys": api_keys, "base_url": server.base_url}
        path.write_text(json.dumps({"prov": [entry]}))
        with pytest.raises(ConfigError, match="api_keys") as info:
            OpenAICompatible.load_from_json_file(path)
        ev.error(info.value)
    path = tmp / "malformed.json"
    path.write_text('{"prov": [{"model_name": "m", "api_keys": ["' + k2 + '",], }]}')
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        OpenAICompatible.load_from_json_file(path)
    ev.error(info.value)
    for made in llms:
        ev.interface(made)
        assert [s["in_flight"] for s in made.key_pool.status()] == [0] * len(made.key_pool)


async def test_no_piece_of_a_key_appears_anywhere(
    server: LLMTestServer, make_llm: MakeLLM, tmp_path: Path, logs: io.StringIO
) -> None:
    keys = (new_key(), new_key(), new_key())
    ev = Evidence()
    await run_scenarios(server, make_llm, keys, tmp_path, ev)
    logged = logs.getvalue()
    assert len(ev.errors) == 14
    assert leaks(logged, keys) == []
    assert leaks(ev.text, keys) == []
    # The logs did record the attempts, by fingerprint: so they were there to leak from.
    for fp in APIKeyPool(keys, "p").fingerprints:
        assert fp in logged
        assert fp in ev.text
    assert re.search(r"llm\.attempt(?!_)", logged)  # the DEBUG event of a success
    assert logged.count("llm.attempt_failed") >= 10
    assert "Incorrect API key provided" in logged
    assert "HTTP 401: Incorrect API key provided" in ev.text  # the disabled key's reason


async def test_a_key_with_a_trailing_newline_does_not_leak(
    server: LLMTestServer,
    tmp_path: Path,
    logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = new_key()
    monkeypatch.setenv("LLMPLUG_TEST_KEY", key + "\n")  # as read from a secrets file
    path = tmp_path / "provider.json"
    entry = {"model_name": "m", "api_keys": ["${LLMPLUG_TEST_KEY}"], "base_url": server.base_url}
    path.write_text(json.dumps({"prov": [{**entry, "max_retries": 0}]}))
    ev = Evidence()
    try:
        llm = OpenAICompatible.load_from_json_file(path)["prov"]["m"]
        async with llm:
            await llm.chat("hi")
    except LLMError as exc:
        ev.error(exc)
    assert leaks(logs.getvalue() + ev.text, (key,)) == []
    # Refused when the file is loaded, naming the key's position, before anything is sent.
    assert "key 0 contains whitespace" in ev.text
    assert server.requests == []


async def test_a_server_echoing_the_key_does_not_leak_it(
    server: LLMTestServer, make_llm: MakeLLM, logs: io.StringIO
) -> None:
    bad = new_key()
    server.push(Error(status=401, message=f"Incorrect API key provided: {bad}."), key=bad)
    llm = make_llm(keys=(bad,))
    ev = Evidence()
    with pytest.raises(LLMError) as info:
        await llm.chat("hi")
    ev.error(info.value)
    ev.interface(llm)
    assert leaks(logs.getvalue() + ev.text, (bad,)) == []


def echoing(key: str) -> dict[str, Any]:
    """Replies that carry the key back, each on a path of its own: an error event inside a
    stream, an ``error`` object in a 200 reply, a 200 body that is not JSON, and an HTML 401
    page with the key where a 300-byte excerpt would cut it in two."""
    html = b"<html><head><title>401</title></head><body>" + b"x" * 240 + b" key "
    return {
        "in-stream-error": Error(status=400, message=f"bad key {key}", in_stream_after=1),
        "error-object-200": Raw(
            body=json.dumps({"error": {"message": f"key {key} is unknown"}}),
            content_type="application/json",
        ),
        "non-json-200": Raw(body=f"upstream said: {key}", content_type="text/plain"),
        "html-401-cut": Error(
            status=401,
            body=html + key.encode() + b" rejected</body></html>",
            content_type="text/html",
        ),
    }


@pytest.mark.parametrize(
    "case", ["in-stream-error", "error-object-200", "non-json-200", "html-401-cut"]
)
@pytest.mark.parametrize("stream", [False, True], ids=["chat", "chat_stream"])
async def test_a_key_echoed_on_any_error_path_does_not_leak(
    server: LLMTestServer, make_llm: MakeLLM, logs: io.StringIO, case: str, stream: bool
) -> None:
    key = new_key()
    server.default = echoing(key)[case]
    llm = make_llm(keys=(key,), max_retries=0)
    ev = Evidence()
    with pytest.raises(LLMError) as info:
        if stream:
            await stream_text(llm)
        else:
            await llm.chat("hi")
    ev.error(info.value)
    ev.interface(llm)
    logged = logs.getvalue()
    assert "llm.attempt_failed" in logged  # the failure was logged, text and all
    assert leaks(logged + ev.text, (key,)) == []
    assert llm.key_pool.fingerprints[0] in str(info.value) + logged
