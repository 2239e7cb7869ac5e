"""Request ids and signatures on every request llmplug sends, whatever the wire format.

Installed, it is found through the ``llmplug`` entry-point group; nothing needs configuring:

- ``x-request-id``: a new id per HTTP request (each retry gets its own), to find one attempt in
  the provider's logs or your gateway's.
- With ``LLMPLUG_SIGNING_SECRET`` set: ``x-llmplug-timestamp`` and ``x-llmplug-signature``,
  ``v1=`` and the hex HMAC-SHA256 of ``"{timestamp}.{method} {path}.{body}"`` under the secret,
  so a gateway in front of your models can reject requests that did not come from your
  services (``verify()`` is the check, for the gateway's side).

It wraps ``build_request`` (``wrapper=True``): it changes the request whichever plugin built it
and replaces none of them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import uuid
from collections.abc import Generator, Mapping
from urllib.parse import urlsplit

from llmplug import Call, HTTPRequest, hookimpl

__all__ = ["SECRET_ENV", "build_request", "sign", "verify"]

SECRET_ENV = "LLMPLUG_SIGNING_SECRET"


def sign(secret: str, timestamp: int, method: str, url: str, body: bytes) -> str:
    """The signature header's value for one request."""
    path = urlsplit(url).path or "/"
    message = f"{timestamp}.{method.upper()} {path}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    method: str,
    url: str,
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether a received request carries a valid signature made within ``tolerance`` seconds."""
    try:
        timestamp = int(headers["x-llmplug-timestamp"])
        given = headers["x-llmplug-signature"]
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False  # a replayed request
    return hmac.compare_digest(given, sign(secret, timestamp, method, url, body))


@hookimpl(wrapper=True)
def build_request(
    wire: str, call: Call, key: str
) -> Generator[None, HTTPRequest | None, HTTPRequest | None]:
    request = yield
    if request is None:
        return None  # no plugin speaks this wire: llmplug reports that, not us
    request.headers["x-request-id"] = uuid.uuid4().hex
    # Read per request, not at import: the secret can be set (or rotated) after llmplug loads.
    secret = os.environ.get(SECRET_ENV)
    if secret:
        timestamp = int(time.time())
        request.headers["x-llmplug-timestamp"] = str(timestamp)
        request.headers["x-llmplug-signature"] = sign(
            secret, timestamp, request.method, request.url, request.content
        )
    return request
