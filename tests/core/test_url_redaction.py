"""Secrets in URLs never show: a base_url's userinfo (a proxy's ``user:pass@``) and its
``?key=`` stay out of errors (text, repr, args, the whole chain, pickles), logs (stdlib and
structlog), reprs, ``status()`` and the command's output, whatever fault the call meets."""

from __future__ import annotations

import io
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.pretty import pretty_repr

import llmplug
from llmplug import (
    APIConnectionError,
    APIKeyPool,
    APITimeoutError,
    ConfigError,
    HTTPRequest,
    LLMError,
    ModelGroup,
    NoMemberAvailableError,
    OpenAICompatible,
    StreamError,
    redact_url,
    redact_urls,
)
from llmplug.testing import Error, Fault, LLMTestServer

from .cli._run import run
from .test_redaction import Evidence, logs, stream_text

__all__ = ["logs"]  # the fixture, used here by name


def secret(tag: str) -> str:
    # Upper case and digits: the hosts and paths below are lower case, so a hit is a leak.
    return f"{tag}{secrets.token_hex(8).upper()}"


# -- the function ------------------------------------------------------------------------------

_lower = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
# A password may hold any character, those that end an authority ("/", "?", "#") included;
# not "@" (a password with an "@" and then a "/" cannot be told from a path) and a user name
# none of those.
_user_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,;%"
_secret_chars = _user_chars + ":/?#"
_secret_names = st.sampled_from(
    ["password", "pass", "pwd", "key", "api_key", "API-KEY", "apikey", "access_token",
     "token", "secret", "client_secret", "sig", "X-Amz-Signature", "X-Amz-Credential",
     "auth", "refresh_token", "x-goog-api-key"]
)  # fmt: skip
_plain_names = st.sampled_from(["db", "alt", "api-version", "timeout", "ssl_ca_certs", "v"])


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, list[str], str]:
    """A URL with secrets in its userinfo and query (or fragment), the secrets, and the URL
    as it must be shown."""
    scheme = draw(st.sampled_from(["http", "https", "redis", "rediss", "unix"]))
    host = draw(_lower) + draw(st.sampled_from(["", ":6379", ":8080"]))
    path = "".join("/" + draw(_lower) for _ in range(draw(st.integers(0, 3))))
    hidden: list[str] = []
    shown = f"{scheme}://"
    url = shown
    if draw(st.booleans()):
        user = "9U9" + draw(st.text(alphabet=_user_chars, max_size=10))
        pw = "9P9" + draw(st.text(alphabet=_secret_chars, max_size=12))
        userinfo = user + (":" + pw if draw(st.booleans()) else "")
        hidden.append(userinfo)
        url += userinfo + "@"
        shown += "***@"
    url += host + path
    shown += host + path
    params: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            value = "9Q9" + draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~%"))
            hidden.append(value)
            params.append((draw(_secret_names), value))
        else:
            params.append((draw(_plain_names), draw(_lower)))
    if params:
        sep = draw(st.sampled_from(["?", "#"]))
        url += sep + "&".join(f"{k}={v}" for k, v in params)
        shown += sep + "&".join(f"{k}={'***' if v.startswith('9Q9') else v}" for k, v in params)
    return url, hidden, shown


@settings(max_examples=300, derandomize=True, database=None)
@given(case=urls(), before=st.sampled_from(["", "Redis at ", "got '", "url=("]))
def test_redact_url_hides_userinfo_and_secret_parameters_and_keeps_the_rest(
    case: tuple[str, list[str], str], before: str
) -> None:
    url, hidden, shown = case
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # twice is once
    text = redact_urls(f"{before}{url}' failed\n(and {url})")
    assert text == f"{before}{shown}' failed\n(and {shown})"
    for part in hidden:
        assert part not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # Quoted, bracketed, in JSON: what closes it stays; a quote inside a password hides.
        ("got 'redis://:a'b@h/0'.", "got 'redis://***@h/0'."),
        ('{"url": "https://h?key=K"}', '{"url": "https://h?key=***"}'),
        ("(see <https://u:p@h/x>)", "(see <https://***@h/x>)"),
        # A password with a character that ends the authority: clients misread such a URL,
        # which is when it ends up in an error.
        ("redis://:ab/cd@host:6379/0", "redis://***@host:6379/0"),
        ("redis://:ab?cd@host/0", "redis://***@host/0"),
        ("redis://:ab@cd@host/0", "redis://***@host/0"),
        # An "@" in a path is no userinfo (Vertex model versions).
        (
            "https://h/v1/models/claude@2024:rawPredict",
            "https://h/v1/models/claude@2024:rawPredict",
        ),
        ("https://[::1]:8080/v1?api%5Fkey=x", "https://[::1]:8080/v1?api%5Fkey=***"),
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ],
)
def test_urls_that_clients_misread_are_hidden_too(url: str, shown: str) -> None:
    assert redact_urls(url) == shown


# -- a base_url with secrets, through every fault ----------------------------------------------


def secret_base_url(server: LLMTestServer) -> tuple[str, tuple[str, ...]]:
    user, pw, key = secret("USER"), secret("PW"), secret("KEY")
    host = server.base_url.split("://", 1)[1]
    return f"http://{user}:{pw}@{host}?key={key}&alt=sse", (user, pw, key)


def hidden_everywhere(text: str, parts: tuple[str, ...]) -> None:
    leaked = [p for p in parts if p in text]
    assert leaked == [], text[:3000]


async def test_a_base_url_with_secrets_shows_none_of_them(
    server: LLMTestServer, logs: io.StringIO
) -> None:
    base_url, parts = secret_base_url(server)
    ev = Evidence()
    made: list[OpenAICompatible] = []

    def llm(**kw: Any) -> OpenAICompatible:
        opts: dict[str, Any] = {"max_retries": 1, "retry_delay": 0.001, **kw}
        pool = APIKeyPool(["sk-url-test"], "p", shared=False)
        one = OpenAICompatible(pool, "m", base_url, **opts)
        made.append(one)
        return one

    async def fails(cls: type[LLMError], call: Any) -> None:
        with pytest.raises(cls) as info:
            await call
        ev.error(info.value)

    def fault(reply: Any) -> None:
        server.handler = lambda _: reply

    # The connection reset before any answer: the client library's error holds the request.
    fault(Fault("reset_before_headers"))
    await fails(APIConnectionError, llm().chat("hi"))
    await fails(APIConnectionError, stream_text(llm()))
    # A proxy that quotes the URL it was given in its error page.
    fault(Error(status=502, message=f"upstream {base_url} is down"))
    await fails(LLMError, llm().chat("hi"))
    await fails(LLMError, stream_text(llm()))
    # A stall (read timeout), and a stream cut halfway.
    fault(Fault("stall_after_headers", seconds=5))
    await fails(APITimeoutError, llm(timeout=0.2, max_retries=0).chat("hi"))
    server.release_stalls()
    fault(Fault("cut_stream", after=2))
    await fails(StreamError, stream_text(llm()))
    # Nothing listening.
    closed = base_url.replace(server.base_url.split("://", 1)[1].split("/")[0], "127.0.0.1:9")
    refused = OpenAICompatible(APIKeyPool(["sk-x"], "p", shared=False), "m", closed, max_retries=0)
    made.append(refused)
    await fails(APIConnectionError, refused.chat("hi"))
    # A group of them: every member down.
    fault(Fault("reset_before_headers"))
    group = ModelGroup([llm(), llm()], name="g", failure_threshold=1, member_wait_timeout=0)
    await fails(LLMError, group.chat("hi"))
    await fails(NoMemberAvailableError, group.chat("hi"))
    ev.parts += [repr(group), repr(group.status())]
    # A base_url that is not http(s) is refused, and the message quotes it.
    with pytest.raises(ConfigError) as info:
        OpenAICompatible(APIKeyPool(["sk-x"], "p"), "m", base_url.replace("http://", "ftp://"))
    ev.error(info.value)
    assert "ftp://***@" in str(info.value)
    # A presigned image URL is a credential for a while.
    image = llmplug.ImgUrl(f"https://bucket.example/i.png?X-Amz-Signature={parts[2]}&v=1")
    assert "X-Amz-Signature=***&v=1" in repr(image)
    ev.parts.append(repr(image))
    # What a plugin is handed, should it print it.
    request = HTTPRequest.post_json(base_url + "/chat/completions", {}, _call(base_url), "sk-x")
    ev.parts += [repr(_call(base_url)), repr(request)]
    ev.parts += [pretty_repr(_call(base_url)), pretty_repr(request)]  # rich, as a traceback
    for one in made:
        ev.interface(one)
        await one.aclose()
    logged = logs.getvalue()
    assert "llm.attempt_failed" in logged  # the failures were logged, messages and all
    assert "upstream http://***@" in logged and "upstream http://***@" in ev.text
    assert "base_url='http://***@127.0.0.1" in ev.text  # the repr still says where
    hidden_everywhere(logged + ev.text, parts)
    assert "sk-x" not in repr(request)


def _call(base_url: str) -> llmplug.Call:
    return llmplug.Call(provider="p", model="m", wire="openai-chat", base_url=base_url, messages=[])


def test_the_command_shows_no_secret_of_a_base_url(server: LLMTestServer, tmp_path: Path) -> None:
    base_url, parts = secret_base_url(server)
    entry = {"model_name": "m", "api_keys": ["sk-cli-url"], "base_url": base_url, "max_retries": 0}
    bad = {**entry, "model_name": "bad", "base_url": base_url.replace("http://", "ftp://")}
    config = tmp_path / "provider.json"
    config.write_text(json.dumps({"p": [entry]}))
    server.handler = lambda _: Error(status=502, message=f"upstream {base_url} is down")
    chat = run("chat", "-c", config, "-m", "p/m", "hi")
    assert chat.returncode == 4 and "upstream http://***@" in chat.stderr
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "a", "prompt": "hi"}) + "\n")
    out = tmp_path / "out.jsonl"
    batch = run("batch", "-c", config, "-m", "p/m", src, "-o", out)
    assert batch.returncode == 1
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["error"]["message"].startswith("upstream http://***@")
    models = run("models", "-c", config)
    assert models.returncode == 0
    config.write_text(json.dumps({"p": [bad]}))
    refused = run("models", "-c", config)
    assert refused.returncode == 3 and "ftp://***@" in refused.stderr
    for done in (chat, batch, models, refused):
        hidden_everywhere(done.stdout + done.stderr, parts)
    hidden_everywhere(out.read_text(), parts)
