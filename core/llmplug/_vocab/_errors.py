"""Typed errors. Each carries provider, model, status and the server's message, never a key,
nor a URL's password (every message passes through ``redact_urls``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._redact import redact_urls

if TYPE_CHECKING:
    from ._classify import ErrorKind
    from ._ratelimits import RateLimits
    from ._types import Completion

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigError",
    "InternalServerError",
    "LLMError",
    "NoKeyAvailableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PluginError",
    "RateLimitError",
    "ResponseError",
    "StreamError",
    "UnprocessableEntityError",
    "status_error_class",
]


class LLMError(Exception):
    """Base of every error llmplug raises about a call."""

    #: An error response's rate limits as the wire's parser read them from its headers.
    rate_limits: RateLimits | None = None

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
        type: str | None = None,
        key_id: str | None = None,
        attempts: int = 1,
        headers: dict[str, str] | None = None,
        plugin: str | None = None,
        kind: ErrorKind | None = None,
        retry_after: float | None = None,
    ) -> None:
        # Here, once, for every error: a URL's secrets (a Redis password, a base_url's ?key=)
        # may be in a message from any layer, a client library's included.
        message = redact_urls(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status = status
        self.code = code
        self.type = type
        self.key_id = key_id
        self.attempts = attempts
        #: The response's headers, when there was a response.
        self.headers = headers
        #: The registered name of the plugin whose code raised this, when a plugin did.
        self.plugin = plugin
        #: What went wrong as the wire classified it (see :data:`llmplug.ErrorKind`): what the
        #: retry policy and model groups act on. None when not classified (a connection error).
        self.kind = kind
        #: Seconds the provider asked to wait before trying again, from its headers or body.
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        bits = [f"HTTP {self.status}" if self.status is not None else None]
        if self.code is not None:
            bits.append(f"code={self.code}")
        if self.plugin:
            bits.append(f"plugin={self.plugin}")
        if self.key_id:
            bits.append(f"key={self.key_id}")
        if self.attempts > 1:
            bits.append(f"after {self.attempts} attempts")
        detail = ", ".join(b for b in bits if b)
        head = f"[{where}] " if where else ""
        tail = f" ({detail})" if detail else ""
        return f"{head}{self.message}{tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ConfigError(LLMError, ValueError):
    """Bad configuration or bad input, found before any request is sent. ``field`` names the
    setting at fault when there is one (``"weights[1]"``): provider.json's loader puts it in
    its message beside the file and the entry."""

    def __init__(self, message: str, *, field: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field


class APIStatusError(LLMError):
    """The server answered with an error status."""


class BadRequestError(APIStatusError):
    """400: the request is wrong; retrying it cannot help."""


class AuthenticationError(APIStatusError):
    """401: the key is not accepted."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no such model or endpoint."""


class UnprocessableEntityError(APIStatusError):
    """422: the server understood the request and refuses it."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens (or, with code ``insufficient_quota``, no quota left)."""


class NoKeyAvailableError(RateLimitError):
    """Every key is cooling down or out of rotation for longer than ``key_wait_timeout``;
    ``keys`` is the pool's status (fingerprints only) at that moment."""

    def __init__(self, message: str, *, keys: list[dict[str, Any]], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.keys = keys


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


class APIConnectionError(LLMError):
    """The request never got an HTTP answer: refused, reset, DNS, TLS."""


class APITimeoutError(APIConnectionError):
    """The request or the response took longer than the timeout allows."""


class ResponseError(LLMError):
    """The server answered 2xx with something that is not a valid reply."""


class PluginError(LLMError):
    """A plugin's code raised something other than an :class:`LLMError` (a ``KeyError`` on a
    body it did not expect, a bug) while building a request, parsing a reply or choosing a key.

    ``plugin`` names it; the original exception is chained (``__cause__``). Not retried: the
    same input would fail the same way."""


class StreamError(LLMError):
    """A stream failed after it started: an error event, bad data, or a cut before its end.

    ``partial`` holds what had arrived before the failure."""

    def __init__(self, message: str, *, partial: Completion | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.partial = partial


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific error class for an HTTP status."""
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIStatusError)
