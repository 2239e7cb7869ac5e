"""The retry policy: after a failed attempt, how long to wait, which key to avoid, or raise."""

from __future__ import annotations

from llmplug._limits._keys import APIKeyPool, KeyLease
from llmplug._vocab._classify import kind_of
from llmplug._vocab._errors import APIConnectionError, APIStatusError, LLMError, StreamError
from llmplug._vocab._retry import MAX_SERVER_DELAY, backoff_delay, server_delay

__all__ = ["DISABLE_SECONDS", "RetryPolicy"]

#: How long a key the server refused (kind ``auth``) or whose quota is gone (kind ``quota``,
#: when the provider gives no retry delay) stays out of rotation.
DISABLE_SECONDS = 3600.0


class RetryPolicy:
    """The rules of docs/architecture.md ("The retry policy"), for one interface."""

    __slots__ = ("key_wait_timeout", "max_retries", "pool", "retry_delay")

    def __init__(
        self, pool: APIKeyPool, max_retries: int, retry_delay: float, key_wait_timeout: float
    ) -> None:
        self.pool = pool
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.key_wait_timeout = key_wait_timeout

    def plan(
        self, error: LLMError, lease: KeyLease, retries: int, max_retries: int | None = None
    ) -> float:
        """Seconds to wait before the next attempt, or raise ``error`` if there is none.
        ``max_retries`` is the call's own (None: the interface's)."""
        error.attempts = retries + 1
        left = retries < (self.max_retries if max_retries is None else max_retries)
        headers = error.headers or {}
        status = error.status
        kind = kind_of(error)
        if isinstance(error, APIStatusError) and status is not None:
            if kind in ("auth", "quota"):
                why = "quota exhausted" if kind == "quota" else f"HTTP {status}"
                told = error.retry_after
                rest = told if kind == "quota" and told is not None and told > 0 else None
                self.pool.cool_down(
                    lease.index, rest or DISABLE_SECONDS, f"{why}: {error.message}", disable=True
                )
                if left and self.pool.healthy():
                    return 0.0  # another key, at once
                raise error
            should = headers.get("x-should-retry")
            if should == "false" or (should != "true" and kind not in ("rate_limit", "server")):
                raise error
            told = error.retry_after if error.retry_after is not None else server_delay(headers)
            if kind == "rate_limit":
                return self._rate_limited(error, lease, retries, told, left)
            if not left:
                raise error
            if told is not None and told > 0:
                if told > MAX_SERVER_DELAY:
                    raise error
                return told
            return backoff_delay(retries, self.retry_delay)
        if isinstance(error, StreamError):
            if left and kind in ("rate_limit", "server"):
                return backoff_delay(retries, self.retry_delay)
            raise error
        if isinstance(error, APIConnectionError) and left:
            return backoff_delay(retries, self.retry_delay)
        raise error

    def _rate_limited(
        self, error: LLMError, lease: KeyLease, retries: int, told: float | None, left: bool
    ) -> float:
        # The reset as the wire's parser read it (x-ratelimit-* unless the parser reads its own).
        reset = error.rate_limits.reset if error.rate_limits is not None else None
        cool = told if told is not None and told > 0 else reset
        if cool is None:
            cool = backoff_delay(retries, self.retry_delay)
        self.pool.cool_down(lease.index, cool, "rate limited (429)")
        if not left:
            raise error
        wait = self.pool.next_ready_in()
        if wait > min(self.key_wait_timeout, MAX_SERVER_DELAY):
            raise error  # the server's own 429, not a "keys cooling" error of ours
        return 0.0  # another key now, or wait for this one to come back before leasing
