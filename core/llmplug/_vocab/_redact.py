"""Secrets in URLs, hidden wherever a URL is printed: errors, logs, reprs, batch lines, the CLI.

A URL may carry a secret in two places: its userinfo (``redis://user:pass@host``, a proxy's
``https://user:pass@proxy``) and its query or fragment (``?password=`` for Redis, ``?key=`` for
Google-style APIs, ``?sig=`` for Azure SAS, ``X-Amz-Signature`` for S3). The whole userinfo
becomes ``***`` (a user name alone may be a token, as in ``https://TOKEN@host``); a query or
fragment parameter whose name says it holds a secret keeps its name and loses its value.

Which names say so (compared lowercased, without ``-``, ``_`` and ``.``): the exact names in
``_SECRET_NAMES``, and any name ending in one of ``_SECRET_ENDINGS``. The endings catch the
families (``api_key``, ``x-api-key``, ``access_token``, ``refresh_token``, ``client_secret``,
``X-Amz-Signature``, ``X-Amz-Credential``); the short exact names (``key``, ``sig``, ``pwd``,
``pass``, ``auth``) would catch too much as endings. A harmless parameter hidden by mistake
costs a little debugging; a secret shown costs a rotation, so the list leans wide. A secret in
the path (``/bot<token>/``) cannot be told from a path and is left as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import re

__all__ = ["is_secret_name", "redact_url", "redact_urls"]

MASK = "***"

_SECRET_NAMES = frozenset(
    {
        "auth",
        "authorization",
        "cookie",
        "code",  # an OAuth authorization code
        "jwt",
        "pass",
        "passphrase",
        "pwd",
        "session",
        "sessionid",
        "sig",
        "setcookie",
    }
)
_SECRET_ENDINGS = (
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "credentials",
)
_NOT_NAME = str.maketrans("", "", "-_.")

# A URL in free text: a scheme, "://", then everything up to whitespace. Not up to a quote or
# a bracket: a password may hold one, and a URL cut there would show the rest of it. What
# closes a quoted or bracketed URL is taken off its end instead (_TRAILING), and put back.
# Compiled at first use: most processes never print a URL.
_URL_PATTERN = r"[A-Za-z][A-Za-z0-9+.\-]*://\S*"
_url: Any = None
_TRAILING = "'\")]}>,.;:!?"


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or header called ``name`` holds a secret (see the module)."""
    if "%" in name:
        from urllib.parse import unquote

        name = unquote(name)
    n = name.lower().translate(_NOT_NAME)
    return n in _SECRET_NAMES or n.endswith(_SECRET_ENDINGS)


def _userinfo_end(rest: str) -> int:
    """Where the userinfo of ``rest`` (a URL after ``://``) ends (its ``@``), or -1."""
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if 0 <= i < end:
            end = i
    authority = rest[:end]
    at = authority.rfind("@")
    if at >= 0:
        return at
    # A password holding an unencoded "/", "?" or "#" ends the authority early (such a URL is
    # invalid, and clients misread it, which is when it gets printed). A ":" in what is left
    # may be "user:pass" cut short as well as "host:port": with an "@" further on, the
    # userinfo is taken to run to it. Hiding a host by mistake (a port, then an "@" in the
    # path) costs less than showing a password that starts with digits.
    if ":" in authority.rpartition("]")[2]:
        return rest.find("@", end)
    return -1


def _params(part: str) -> str:
    out = []
    for param in part.split("&"):
        name, eq, _ = param.partition("=")
        out.append(f"{name}={MASK}" if eq and is_secret_name(name) else param)
    return "&".join(out)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of its secret parameters (query and fragment)
    replaced by ``***``; anything else (scheme, host, port, path) is kept for debugging.
    Cheap on a URL without ``@``, ``?`` or ``#``: it comes back as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    at = _userinfo_end(rest) if "@" in rest else -1
    if at >= 0:
        rest = MASK + rest[at:]
    if "?" in rest or "#" in rest:
        rest, hash_, fragment = rest.partition("#")
        head, q, query = rest.partition("?")
        rest = head + q + (_params(query) if q else "")
        if hash_:
            rest += hash_ + _params(fragment)
    return scheme + sep + rest


def redact_urls(text: str) -> str:
    """``text`` (a message, a repr, a log line) with every URL in it passed through
    :func:`redact_url`. Costs one substring test when there is no ``://`` in it."""
    global _url
    if "://" not in text:
        return text
    if _url is None:
        import re

        _url = re.compile(_URL_PATTERN)
    return str(_url.sub(_redact_match, text))


def _redact_match(m: re.Match[str]) -> str:
    found = m.group()
    url = found.rstrip(_TRAILING)
    return redact_url(url) + found[len(url) :]
