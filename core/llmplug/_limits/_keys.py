"""API keys: the pool, per-key health and load, and leases. Rotation strategies are plugins that
choose an index; this module only keeps the books."""

from __future__ import annotations

import math
import re
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from llmplug._vocab._errors import ConfigError
from llmplug._vocab._numbers import MAX_SECONDS, count, seconds

__all__ = ["APIKeyPool", "KeyHealth", "KeyLease", "SharedKeyState", "fingerprint"]

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")


def fingerprint(key: str) -> str:
    """A short stable id for a key, safe to log: a hash, never a piece of the key itself."""
    import hashlib  # on use, not with llmplug: it loads OpenSSL (tests/core/test_import.py)

    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


#: A run of this many characters of a key found in error text is a piece of it: replaced too.
#: An error excerpt cut in the middle of an echoed key must not leave its first half behind.
PIECE = 8


def _bounded(value: float) -> float:
    # Asked for by code, not read from a provider: an infinite cooldown means "as long as may
    # be", not "refused" (the provider's numbers were made safe where they were read).
    safe = seconds(value)
    if safe is not None:
        return safe
    return MAX_SECONDS if value > 0 else 0.0


class _KeyState:
    __slots__ = (
        "_pieces",
        "cooldown_reason",
        "cooldown_until",
        "disabled",
        "errors",
        "fingerprint",
        "in_flight",
        "requests",
        "secret",
        "shared_in_flight",
    )

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.fingerprint = fingerprint(secret)
        self.in_flight = 0
        self.requests = 0
        self.errors = 0
        self.cooldown_until = 0.0
        self.cooldown_reason: str | None = None
        self.disabled = False
        #: Requests in flight on this key in other processes, as the shared view last said.
        self.shared_in_flight = 0
        self._pieces: frozenset[str] | None = None

    def redact(self, text: str) -> str:
        """``text`` with the key, and every piece of it of :data:`PIECE` or more characters,
        replaced by the fingerprint. Error paths only: it costs a set lookup per character."""
        key = self.secret
        if key in text:
            text = text.replace(key, self.fingerprint)
        if len(key) < PIECE or len(text) < PIECE:
            return text
        if self._pieces is None:
            self._pieces = frozenset(key[i : i + PIECE] for i in range(len(key) - PIECE + 1))
        pieces = self._pieces
        out: list[str] = []
        i = start = 0
        while i <= len(text) - PIECE:
            if text[i : i + PIECE] in pieces:
                end = i + PIECE
                while end < len(text) and text[i : end + 1] in key:
                    end += 1
                out.append(text[start:i])
                out.append(self.fingerprint)
                i = start = end
            else:
                i += 1
        if not out:
            return text
        out.append(text[start:])
        return "".join(out)

    def scrub(self, body: bytes) -> bytes:
        """``body`` with the key replaced by the fingerprint, before anything cuts it."""
        key = self.secret.encode()
        # find, not ``in``: bytes' ``in`` first tries its operand as an int (a byte value),
        # and raising and dropping that TypeError cost more than the search, once a reply.
        return body.replace(key, self.fingerprint.encode()) if body.find(key) >= 0 else body


class KeyLease:
    """One attempt's hold on a key. Release it exactly once (the core does, in ``finally``)."""

    __slots__ = ("_released", "index", "pool")

    def __init__(self, pool: APIKeyPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self._released = False

    @property
    def key(self) -> str:
        """The secret itself, for the request's headers only."""
        return self.pool._keys[self.index].secret

    @property
    def fingerprint(self) -> str:
        return self.pool._keys[self.index].fingerprint

    def redact(self, text: str) -> str:
        """``text`` with this key and any piece of it replaced by its fingerprint."""
        return self.pool._keys[self.index].redact(text)

    def scrub(self, body: bytes) -> bytes:
        """``body`` with this key replaced by its fingerprint."""
        return self.pool._keys[self.index].scrub(body)

    def release(self, *, error: bool = False) -> None:
        """Give the key back; idempotent, so a double release cannot corrupt the counts."""
        with self.pool.lock:
            if self._released:
                return
            self._released = True
            state = self.pool._keys[self.index]
            state.in_flight -= 1
            if error:
                state.errors += 1
            health = self.pool._books.health
            if health is not None:
                health.released(state.fingerprint)

    def __repr__(self) -> str:
        return f"<KeyLease {self.fingerprint} of {self.pool.provider_id!r}>"


class SharedKeyState(NamedTuple):
    """One key's state as other processes see it (what a :class:`KeyHealth` backend feeds in)."""

    cooldown_seconds: float
    reason: str | None
    disabled: bool
    in_flight: int


class KeyHealth(Protocol):
    """Key health shared with other processes (e.g. through Redis), attached to a pool with
    :meth:`APIKeyPool.attach_health`.

    The pool calls these under its lock, on the hot path: they must only note the change and
    return (publishing is the backend's own asynchronous business). Keys are named by their
    fingerprint, never by the secret. The backend feeds the others' state back with
    :meth:`APIKeyPool.apply_shared`."""

    def leased(self, fingerprint: str) -> None:
        """A request of this process took the key."""

    def released(self, fingerprint: str) -> None:
        """A request of this process gave the key back."""

    def cooled(self, fingerprint: str, seconds: float, reason: str, disable: bool) -> None:
        """This process rested the key for ``seconds`` (``disable``: took it out of rotation) for
        ``reason``."""


class _Books:
    """What pools of the same keys at the same provider share: each key's health and load,
    the lock over them, and the strategies' state."""

    __slots__ = ("__weakref__", "health", "keys", "lock", "strategy_state", "wait_turns")

    def __init__(self, keys: list[str]) -> None:
        self.keys = [_KeyState(k) for k in keys]
        self.lock = threading.RLock()
        self.strategy_state: dict[str, Any] = {}
        self.wait_turns = 0
        self.health: KeyHealth | None = None


#: The books of every shared pool alive, by provider and keys.
_shared: weakref.WeakValueDictionary[tuple[str, tuple[str, ...]], _Books] = (
    weakref.WeakValueDictionary()
)
_shared_lock = threading.Lock()


def strategy_of(strategy: Any, provider_id: str) -> tuple[str, dict[str, Any]]:
    """A key strategy given as a name or as ``{"name": ..., **settings}``: its name and its
    settings."""
    if isinstance(strategy, str):
        return strategy, {}
    if isinstance(strategy, Mapping):
        name = strategy.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f'APIKeyPool {provider_id!r}: key_strategy needs a "name" (a non-empty '
                f"string) beside its settings, got {name!r}",
                field="key_strategy.name",
            )
        return name, {k: v for k, v in strategy.items() if k != "name"}
    raise ConfigError(
        f"APIKeyPool {provider_id!r}: key_strategy must be a name or an object with a "
        f'"name", got {type(strategy).__name__}',
        field="key_strategy",
    )


class APIKeyPool:
    """The API keys of one provider account and their health.

    Pools made with the same ``provider_id`` and the same keys share their books (as
    SimpleLLMFunc returns the same pool): the provider's limits hold for the keys, not for the
    objects, so two interfaces on those keys rotate and cool down together. ``shared=False``
    gives a pool books of its own. ``strategy`` names the rotation strategy plugin
    (``round_robin`` by default, or ``least_loaded``), or is ``{"name": ..., **settings}`` for
    a strategy that takes settings (``{"name": "weighted", "weights": [3, 1]}``); it is the
    pool's own, not shared. ``strategy_settings`` holds the settings, for the plugin."""

    def __init__(
        self,
        api_keys: Iterable[str],
        provider_id: str,
        *,
        strategy: str | Mapping[str, Any] = "round_robin",
        shared: bool = True,
    ) -> None:
        name, settings = strategy_of(strategy, provider_id)
        keys = list(api_keys) if not isinstance(api_keys, str) else [api_keys]
        if not keys:
            raise ConfigError(f"APIKeyPool {provider_id!r} needs at least one API key")
        for i, k in enumerate(keys):
            if not isinstance(k, str) or not k:
                raise ConfigError(
                    f"APIKeyPool {provider_id!r}: every API key must be a non-empty string"
                    f" (key {i} is not)"
                )
            if not _PRINTABLE_ASCII.fullmatch(k):
                # A stray newline from a secrets file would otherwise reach an HTTP header and
                # come back in the client library's error text, key and all.
                raise ConfigError(
                    f"APIKeyPool {provider_id!r}: key {i} contains whitespace, control or "
                    "non-ASCII characters (a stray newline from a file or variable?)"
                )
        self.provider_id = provider_id
        self.strategy = name
        #: The key strategy's settings (all but ``name`` of a ``{"name": ...}`` strategy).
        self.strategy_settings: dict[str, Any] = settings
        if shared:
            with _shared_lock:
                books = _shared.get((provider_id, tuple(keys)))
                if books is None:
                    books = _shared[provider_id, tuple(keys)] = _Books(keys)
        else:
            books = _Books(keys)
        self._books = books
        self._keys = books.keys
        #: Scratch space for strategy plugins (a cursor, a turn counter).
        self.strategy_state = books.strategy_state
        #: Held while a strategy chooses and leases (the core calls ``select_key`` under it) and
        #: while the books change, so threads sharing the pool cannot pile onto one key.
        self.lock = books.lock

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        fps = ", ".join(s.fingerprint for s in self._keys)
        return (
            f"APIKeyPool(provider_id={self.provider_id!r}, keys=[{fps}], "
            f"strategy={self.strategy!r})"
        )

    @property
    def fingerprints(self) -> list[str]:
        return [s.fingerprint for s in self._keys]

    def in_flight(self, index: int) -> int:
        """Requests in flight on key ``index``: here, plus elsewhere when health is shared."""
        s = self._keys[index]
        return s.in_flight + s.shared_in_flight

    @property
    def health(self) -> KeyHealth | None:
        """The shared key-health backend, if one is attached."""
        return self._books.health

    def attach_health(self, health: KeyHealth | None) -> None:
        """Share this pool's key health (and that of every pool sharing its books) through
        ``health``; None detaches. Without one, the pool behaves as it always did."""
        with self.lock:
            self._books.health = health
            if health is None:
                for s in self._keys:
                    s.shared_in_flight = 0

    def apply_shared(self, view: dict[str, SharedKeyState]) -> None:
        """What other processes see, by fingerprint: their cooldowns join ours (never
        shortening one), their in-flight counts replace the previous view's."""
        now = time.monotonic()
        with self.lock:
            for s in self._keys:
                got = view.get(s.fingerprint)
                if got is None:
                    s.shared_in_flight = 0
                    continue
                s.shared_in_flight = count(got.in_flight) or 0
                left = seconds(got.cooldown_seconds) or 0.0
                until = now + left
                if left > 0 and until > s.cooldown_until + 0.001:
                    s.cooldown_until = until
                    s.cooldown_reason = got.reason
                    s.disabled = got.disabled

    def requests(self, index: int) -> int:
        """Requests key ``index`` has carried since the pool was made."""
        return self._keys[index].requests

    def healthy(self, now: float | None = None) -> list[int]:
        """Indexes of keys not cooling down or taken out of rotation, in order."""
        t = time.monotonic() if now is None else now
        return [i for i, s in enumerate(self._keys) if s.cooldown_until <= t]

    def lease(self, index: int) -> KeyLease:
        """Hand out key ``index`` for one attempt (strategies call this)."""
        with self.lock:
            state = self._keys[index]
            state.in_flight += 1
            state.requests += 1
            health = self._books.health
            if health is not None:
                health.leased(state.fingerprint)
        return KeyLease(self, index)

    def cool_down(self, index: int, seconds: float, reason: str, *, disable: bool = False) -> None:
        """Keep key ``index`` out of rotation for ``seconds`` (never shortening a longer one).
        ``disable`` marks a key the server refused (bad key, no quota): its long cooldown shows
        as ``disabled`` in :meth:`status`. At most a day (:data:`llmplug.wire.MAX_SECONDS`):
        longer, infinite included, is a day; NaN or negative is no cooldown."""
        left = _bounded(seconds)
        state = self._keys[index]
        until = time.monotonic() + left
        with self.lock:
            if until > state.cooldown_until:
                state.cooldown_until = until
                state.cooldown_reason = reason
                state.disabled = disable
                health = self._books.health
                if health is not None:
                    health.cooled(state.fingerprint, left, reason, disable)

    def wait_turn(self, limit: float) -> float:
        """Seconds a caller should wait for a key when none is healthy (0 if one is).

        Waiters are spread in turn over the keys that come back within ``limit`` instead of
        all waking for the first one, which would pile every waiting request onto one key the
        moment it returns (and likely earn it another 429). More than ``limit`` if none will;
        infinite when every key is disabled (a refused key is not waited for)."""
        now = time.monotonic()
        with self.lock:
            left = [s.cooldown_until - now for s in self._keys]
            if min(left) <= 0:
                return 0.0
            resting = [i for i, s in enumerate(self._keys) if not s.disabled]
            if not resting:
                return math.inf
            soon = [i for i in resting if left[i] <= limit]
            if not soon:
                return min(left[i] for i in resting)
            self._books.wait_turns += 1
            return left[soon[self._books.wait_turns % len(soon)]]

    def next_ready_in(self) -> float:
        """Seconds until the first cooling key comes back (0 if one is healthy now)."""
        now = time.monotonic()
        return max(0.0, min(s.cooldown_until for s in self._keys) - now)

    def reset(self) -> None:
        """Bring every key back into rotation."""
        with self.lock:
            for s in self._keys:
                s.cooldown_until = 0.0
                s.cooldown_reason = None
                s.disabled = False

    def status(self) -> list[dict[str, Any]]:
        """Per key, by fingerprint: ``state`` (ok, cooling or disabled), in flight, requests,
        errors, seconds of cooldown left and its reason (e.g. the server's 401 message)."""
        now = time.monotonic()
        out = []
        for s in self._keys:
            cooling = s.cooldown_until > now
            out.append(
                {
                    "key": s.fingerprint,
                    "state": ("disabled" if s.disabled else "cooling") if cooling else "ok",
                    "in_flight": s.in_flight + s.shared_in_flight,
                    "requests": s.requests,
                    "errors": s.errors,
                    "cooldown_seconds": round(max(0.0, s.cooldown_until - now), 3),
                    "cooldown_reason": s.cooldown_reason if cooling else None,
                }
            )
        return out

    def describe(self) -> str:
        """One line per key for error messages: fingerprint, state, time left, reason."""
        return "; ".join(
            f"{r['key']} {r['state']}"
            + (
                f" {r['cooldown_seconds']:.1f}s ({r['cooldown_reason']})"
                if r["state"] != "ok"
                else ""
            )
            for r in self.status()
        )
