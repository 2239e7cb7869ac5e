"""The response cache: what wraps each call of an interface or a group.

A hit answers without calling ``run``: no rate-limit token, no key lease, no request. A miss
runs the call and keeps its answer; an error or a stream that did not reach ``Done`` keeps
nothing. Identical calls running at once in this process make one request (single flight): the
first runs it, the others wait and get its answer as a hit (or, should it fail, one of them
runs it). With Redis, other processes do the same through a short lock.

Whatever goes wrong with the store (a damaged or locked file, a full disk, Redis down), the call
goes on without the cache and one warning says so (one per outage, not one per call); the
store is left alone for a moment after a failure, so an outage costs the calls nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import msgspec

from llmplug import (
    Call,
    Completion,
    Done,
    ProbedRequest,
    Registry,
    StreamEvent,
    Tool,
    default_registry,
    redact_urls,
)

from ._entry import VERSION, Body, Delta, Entry, decode, encode, replay
from ._key import cache_key, hint_of, hint_seed, sent_key
from ._redis import RedisStore
from ._settings import Settings
from ._sqlite import ASK, Ask, SQLiteStore

__all__ = ["ResponseCache", "Stats", "store_for"]

log = logging.getLogger("llmplug.cache")

Store = SQLiteStore | RedisStore
Complete = Callable[[Call], Awaitable[Completion]]
Stream = Callable[[Call], AsyncGenerator[StreamEvent, None]]

#: After a failure, how long the store is left alone (calls go uncached at no cost), doubled
#: for each failure in a row up to MAX_REST.
REST = 1.0
MAX_REST = 60.0
#: How often a call waits for another process's answer under the Redis lock, at most.
_POLL_MAX = 0.05


class Stats:
    """This process's counts for one cache: ``hits``, ``misses``, ``saved`` (money)."""

    __slots__ = ("hits", "misses", "saved")

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.saved = 0.0

    def __repr__(self) -> str:
        return f"Stats(hits={self.hits}, misses={self.misses}, saved={self.saved!r})"


#: A call in flight in this process: the identical calls waiting for its answer, each with a
#: future of its own loop (settled with None if it failed: one of them asks again). A list, not
#: an object with a state: a miss with nobody waiting, by far the most common, must cost next
#: to nothing. It is in ``_Shared.flights`` from the moment the call leads until it lands, and
#: waiters join it only then, under ``_Shared.lock``: none joins after the answer was handed out.
_Waiters = list[tuple[asyncio.AbstractEventLoop, "asyncio.Future[Entry | None]"]]


class _Unkeyed(_Waiters):
    """A call that is a miss known without its key (see ``ResponseCache._lead``): its flight,
    under its ``hint``, when it ``leads`` one (a refresh does not). A call sharing the hint joins
    it only if its key is this call's, made then (by ``key``, once). ``land`` keeps its answer
    and ends the flight. (Its attributes are set by ``_lead``, without an ``__init__``: a call to
    one, and to ``super().__init__``, cost a miss more than the rest of leading.)"""

    __slots__ = ("_key", "cache", "call", "hint", "hot", "leads")

    cache: ResponseCache
    call: Call
    hint: int
    hot: object  # the plugins when the call was made (``Registry.hot``)
    leads: bool
    _key: str | None

    def key(self) -> str | None:
        if self._key is None:
            keyed = self.cache._key(self.call)  # (still in flight: the call as it was sent)
            self._key = None if keyed is None else keyed[0]
        return self._key

    def land(self, got: Completion | Entry | None, sent: tuple[str, str, bytes] | None) -> None:
        """Keep the answer ``got`` (None: the call failed) in SQLite's waiting answers, with its
        hint and without its key, which the writer thread makes: of ``sent``, the request the
        call's attempt built, when it was noted, else of the call (``ResponseCache._question``);
        then end the flight, handing ``got`` to the calls that joined it. (One method for what
        most misses do after the call: see ``ResponseCache._lead``.)"""
        cache = self.cache
        shared = cache.shared
        if got is not None:
            cache.stats.misses += 1
            if not shared.down_until or shared.up():
                store = shared.store
                assert isinstance(store, SQLiteStore)  # (only SQLite knows hints)
                call = self.call
                ttl = call.cache_ttl or cache.settings.ttl
                if isinstance(got, Entry):  # (a stream's, with its events)
                    completion, events = got.completion, got.events
                else:
                    completion, events = got, None
                try:
                    body = encode(completion, events, call.wire != "group")
                    question: _Question | _Sent | None = (
                        cache._question(call, self.hot)
                        if sent is None
                        else _Sent(call.wire, call.model, sent)
                    )
                    if question is not None:
                        store.keep_unkeyed(self.hint, cache, question, body, ttl)
                    elif cache.registry.hot is self.hot:  # (params that do not encode)
                        keyed = cache._key(call)
                        if keyed is not None:
                            store.keep(keyed[0], body, ttl, self.hint)
                except Exception as exc:
                    shared.failed(exc, "storing an answer")
        if self.leads:
            with shared.lock:
                waiters = shared.flights.pop(self.hint, ())
            if waiters:
                _hand_out(waiters, got)


class _Question(msgspec.Struct, array_like=True, gc=False):
    """An answer's question, as the writer thread makes its key (see ``ResponseCache._question``):
    a record the garbage collector does not track, held until the flush."""

    call: Call
    hot: object  # the plugins when the call was made (``Registry.hot``)
    #: The call's params and tools as they were, JSON, when they hold values the caller may
    #: change (None: they hold none).
    frozen: bytes | None


class _Sent(msgspec.Struct, array_like=True, gc=False):
    """An answer's question as the request its call's attempt built (``Registry.take_request``),
    of which the writer thread makes its key (``sent_key``): bytes, which nothing changes, and
    not the call, which the garbage collector would have tracked until the flush."""

    wire: str
    model: str
    sent: tuple[str, str, bytes]


_snapshot = msgspec.json.Encoder().encode
_restore = msgspec.json.Decoder(tuple[dict[str, Any], list[Tool] | None]).decode
#: The types of params values that cannot change once passed (the rest are copied).
_ATOMIC = frozenset({str, int, float, bool, type(None), bytes})


def _settle(waiter: asyncio.Future[Entry | None], entry: Entry | None) -> None:
    if not waiter.done():  # (a follower that was cancelled)
        waiter.set_result(entry)


def _hand_out(waiters: _Waiters, got: Entry | Completion | None) -> None:
    """Give the calls that joined a flight its answer (an answer of chat() as it came, made an
    entry only for them: most flights have none), each on its own loop."""
    if isinstance(got, Completion):
        got = Entry(VERSION, got)
    for loop, waiter in waiters:
        with contextlib.suppress(RuntimeError):  # the follower's loop has ended
            loop.call_soon_threadsafe(_settle, waiter, got)


class _Shared:
    """One store per file or Redis, per process: its worker thread, its health and its
    in-flight calls are shared by every interface and group that uses it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: By key, or by hint for a call that leads without its key.
        self.flights: dict[str | int, _Waiters] = {}
        #: The hints of the calls in flight under their key, and how many: a call with one of
        #: them may be asking the same question, and does not lead without its key.
        self.keyed_hints: dict[int, int] = {}
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.rest = REST
        self.warned = False
        if isinstance(store, SQLiteStore):
            store.on_write = self.wrote

    def up(self) -> bool:
        return self.down_until == 0.0 or time.monotonic() >= self.down_until

    def failed(self, exc: BaseException, doing: str) -> None:
        # Each failure in a row rests the store twice as long (up to a minute): a store that
        # stays broken costs the calls one failed try a minute.
        self.down_until = time.monotonic() + self.rest
        self.rest = min(self.rest * 2, MAX_REST)
        if not self.warned:
            self.warned = True
            log.warning(
                "llmplug cache at %s failed while %s (%s: %s): calls go on without the cache",
                self.store.where,
                doing,
                type(exc).__name__,
                redact_urls(str(exc)),  # a client's error may quote the URL it was given
            )

    def ok(self) -> None:
        if self.warned:
            self.warned = False
            log.warning("llmplug cache at %s works again", self.store.where)
        self.down_until = 0.0
        self.rest = REST

    def wrote(self, exc: BaseException | None) -> None:
        if exc is None:
            if self.down_until:
                self.ok()
        else:
            self.failed(exc, "storing an answer")


_shared: dict[tuple[Any, ...], _Shared] = {}
_shared_lock = threading.Lock()


def store_for(settings: Settings) -> _Shared:
    if settings.kind == "sqlite":
        ident: tuple[Any, ...] = ("sqlite", settings.where)
    else:
        ident = ("redis", settings.url, settings.prefix)
    with _shared_lock:
        shared = _shared.get(ident)
        if shared is None:
            store: Store = (
                SQLiteStore(settings.path, settings.max_bytes, settings.busy_timeout)
                if settings.kind == "sqlite"
                else RedisStore(
                    settings.url or "", settings.prefix, settings.timeout, settings.where
                )
            )
            shared = _shared[ident] = _Shared(store)
        elif isinstance(shared.store, SQLiteStore):
            shared.store.max_bytes = min(shared.store.max_bytes, settings.max_bytes)
    return shared


class ResponseCache:
    """The ``CallWrapper`` of one interface or group (``owner``)."""

    def __init__(self, settings: Settings, owner: Any) -> None:
        self.settings = settings
        self.owner = owner
        self.shared = store_for(settings)
        #: This process's hits and misses through this owner.
        self.stats = Stats()
        self._registry: Registry | None = None
        #: Whether other processes' identical calls are waited for (Redis's lock).
        self._locks = settings.lock and isinstance(self.shared.store, RedisStore)
        #: Whether the store knows its answers' hints (see SQLiteStore), and the hint seed of
        #: the last call's wire and model.
        self._hints = isinstance(self.shared.store, SQLiteStore)
        self._seed = ("", "", 0)

    def __repr__(self) -> str:
        return f"ResponseCache({self.settings.kind} at {self.shared.store.where})"

    def flush(self) -> None:
        """Write the answers still waiting to be written, now (SQLite gathers them for a moment
        and writes them together; they are written at exit in any case). Blocks: not for an
        event loop."""
        if isinstance(self.shared.store, SQLiteStore):
            self.shared.store.flush()

    # -- the key and the store, each failure the call's no concern -------------------------------

    @property
    def registry(self) -> Registry:
        registry = self._registry
        if registry is None:  # (the first call: the owner is made by then)
            owner = self.owner
            registry = self._registry = (
                owner.pipeline.registry if hasattr(owner, "pipeline") else owner.registry
            ) or default_registry()
        return registry

    def _key(self, call: Call) -> tuple[str, ProbedRequest | None] | None:
        """The call's key, and the request probed for it (see ``cache_key``)."""
        registry = self.registry
        try:
            return cache_key(call, registry)
        except Exception as exc:  # the wire refused the call: the real attempt will say why
            log.debug("llmplug cache: no key for this call (%s: %s)", type(exc).__name__, exc)
            return None

    def key_of(self, question: _Question | _Sent) -> str | None:
        """The key of an answer kept without one (see ``_lead``), made by the store's writer
        thread: of the request its call's attempt built, else of the call as it was when its
        answer was kept. None: the plugins changed since the call (the request they would build
        is not the one that was sent), or the wire refuses the call now."""
        if type(question) is _Sent:
            return sent_key(question.wire, question.model, question.sent)
        assert isinstance(question, _Question)
        call = question.call
        if self.registry.hot is not question.hot:
            return None
        if question.frozen is not None:
            try:
                params, tools = _restore(question.frozen)
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None
            call = msgspec.structs.replace(call, params=params, tools=tools)
        keyed = self._key(call)
        return None if keyed is None else keyed[0]

    def _question(self, call: Call, hot: object) -> _Question | None:
        """What the writer thread makes the key of a call's answer from: the call, with its
        params and tools as they are now, in bytes, if they hold values the caller may change
        later (a list of stop words it goes on building must not change the key of the question
        it asked), and the plugins of the call. (The messages are the call's own list, of
        frozen messages.) None: they do not encode."""
        frozen = None
        mutable = call.tools is not None
        if not mutable:
            for value in call.params.values():
                if type(value) not in _ATOMIC:
                    mutable = True
                    break
        if mutable:
            try:
                frozen = _snapshot((call.params, call.tools))
            except (TypeError, ValueError, OverflowError):
                return None
        return _Question(call, hot, frozen)

    def _lead(self, call: Call, refresh: bool) -> _Unkeyed | int | None:
        """An ``_Unkeyed`` for a call that is a miss known without its key: a refresh (it reads
        nothing), or a call whose hint no answer has, waiting or in the file, and no call in
        flight, which then leads the flight of its hint. Else its hint (``hint_of``), for
        its key's lookup; None: the store knows no hints (Redis), or the call has none.

        (What most misses do before the call, in one method, as ``_Unkeyed.land`` is what they
        do after it: inside a whole call each Python call of the cache's runs cold.)"""
        if not self._hints:
            return None
        wire, model, seed = self._seed
        if call.model != model or call.wire != wire:  # (an owner's calls mostly share both)
            seed = hint_seed(call.wire, call.model)
            self._seed = (call.wire, call.model, seed)
        hint = hint_of(call, seed)
        if hint is None:
            return None
        shared = self.shared
        if not refresh:
            store: SQLiteStore = shared.store  # type: ignore[assignment]  # (hints: SQLite's)
            # Some answer may have the hint (waiting, being written, or in the file: all when
            # the file is not known yet), or a call in flight under its key: the key is made.
            # (The store's state read here, not through a method of its: see above. In the
            # order an answer goes through them, so that one written meanwhile is seen.)
            if (
                hint in store.hinted
                or hint in store.writing_hinted
                or (known := store.hints) is None
                or hint in known
                or hint in shared.keyed_hints
            ):
                return hint
        miss = _Unkeyed()
        miss.cache, miss.call, miss.hint, miss._key = self, call, hint, None
        miss.hot = self.registry.hot
        miss.leads = not refresh
        # (No lock: setdefault is one step, and nothing but a leader adds a flight.) A call in
        # flight under this hint may be asking the same question: the keys will tell.
        if refresh or shared.flights.setdefault(hint, miss) is miss:
            return miss
        return hint

    def _reuse(self, call: Call, probed: ProbedRequest | None) -> None:
        """Have the call's attempt send the request probed for its key, not build it again
        (``Registry.reuse_probe``)."""
        if probed is not None and self._registry is not None:
            self._registry.reuse_probe(call, probed)

    def _peek(self, key: str, call: Call, hint: int | None) -> Entry | Ask | None:
        """The lookup, when the store can answer it on the loop (SQLite's answers waiting to be
        written and its known misses: no coroutine for them), else ``ASK`` (await ``_lookup``)."""
        shared = self.shared
        if shared.down_until and not shared.up():
            return None
        store = shared.store
        if not isinstance(store, SQLiteStore):
            return ASK
        try:
            body = store.peek(key, hint)
        except Exception as exc:
            shared.failed(exc, "reading an answer")
            return None
        if body is None:
            return None  # (most misses)
        return ASK if body is ASK else self._found(body, call)

    def _found(self, body: Body | None, call: Call) -> Entry | None:
        if self.shared.down_until:
            self.shared.ok()
        if body is None:
            return None

        def parse(raw: bytes) -> Completion:
            # (A raw body: what the call's wire parser makes of it, as its attempt did.)
            assert self._registry is not None  # (known since the key)
            parser = self._registry.hook.parse_stream(wire=call.wire, call=call)
            return parser.parse_body(raw)  # type: ignore[no-any-return]

        return decode(body, parse)  # undecodable: a miss, overwritten

    async def _find(
        self, key: str, call: Call, hint: int | None
    ) -> tuple[Entry | None, str | None]:
        """The stored answer of ``key``: from the loop when the store can tell (``_peek``), else
        from the file or Redis, else (Redis's lock) from another process asking it. Returns
        (the answer, None) or (None, the lock's token to let go of, if one was taken)."""
        found = self._peek(key, call, hint)
        entry = await self._lookup(key, call) if found is ASK else found
        if entry is None and self._locks:
            return await self._from_others(key, call)
        return entry, None

    async def _lookup(self, key: str, call: Call) -> Entry | None:
        """The lookup that leaves the loop: SQLite's file (once ``_peek`` said ASK), Redis."""
        shared = self.shared
        if not shared.up():
            return None
        store = shared.store
        try:
            body = await (store.read(key) if isinstance(store, SQLiteStore) else store.get(key))
        except Exception as exc:
            shared.failed(exc, "reading an answer")
            return None
        return self._found(body, call)

    def _keep(
        self,
        key: str,
        hint: int | None,
        call: Call,
        completion: Completion,
        events: list[Delta] | None,
    ) -> Awaitable[None] | None:
        """Store the answer under ``key``: at once into SQLite's waiting answers (with its
        hint), or what to await for Redis (None: nothing to await)."""
        shared = self.shared
        self.stats.misses += 1
        if shared.down_until and not shared.up():
            return None
        store = shared.store
        ttl = call.cache_ttl or self.settings.ttl
        try:
            # An interface's answer is what its wire's parser made of the body (a group's, of
            # a member's wire): it may be stored raw, and parsed again. (Its bytes are made on
            # SQLite's writer thread.)
            body = encode(completion, events, call.wire != "group")
            if isinstance(store, SQLiteStore):
                store.keep(key, body, ttl, hint)
                return None
            data = bytes(body)
        except Exception as exc:
            shared.failed(exc, "storing an answer")
            return None
        return self._put(store, key, data, ttl)

    async def _put(self, store: RedisStore, key: str, body: bytes, ttl: float | None) -> None:
        try:
            await store.put(key, body, ttl)
        except Exception as exc:
            self.shared.failed(exc, "storing an answer")

    def _hit(self, key: str, entry: Entry) -> Completion:
        c = entry.completion
        saved = c.cost
        pricing = getattr(self.owner, "pricing", None)
        if pricing is not None and c.usage is not None:
            saved = pricing.cost(c.usage)
        self.stats.hits += 1
        self.stats.saved += saved or 0.0
        if self.shared.up():
            try:
                self.shared.store.touch(key, saved)
            except Exception as exc:
                self.shared.failed(exc, "counting a hit")
        return msgspec.structs.replace(c, cached=True, cost=0.0, saved_cost=saved)

    # -- single flight -----------------------------------------------------------------------------

    def _join(self, key: str, hint: int | None) -> asyncio.Future[Entry | None] | None:
        """None when this call leads the flight of ``key`` (makes the request), else a future
        of this loop that the leader settles with its answer (None: it failed). The leader may
        be a call that led without its key, under ``hint``, if its key is ``key``."""
        shared = self.shared
        flights = shared.flights
        unkeyed = None if hint is None else flights.get(hint)
        if not isinstance(unkeyed, _Unkeyed) or unkeyed.key() != key:
            unkeyed = None  # (its key made outside the lock: a wire's build may take a while)
        with shared.lock:
            waiters = flights.get(key)
            if waiters is None and unkeyed is not None and flights.get(hint or 0) is unkeyed:
                waiters = unkeyed  # (still in flight: it has not handed its answer out yet)
            if waiters is None:
                shared.flights[key] = []
                if hint is not None:
                    shared.keyed_hints[hint] = shared.keyed_hints.get(hint, 0) + 1
                return None
            # A future of the follower's own loop: a follower that is cancelled cancels only it.
            loop = asyncio.get_running_loop()
            mine: asyncio.Future[Entry | None] = loop.create_future()
            waiters.append((loop, mine))
        return mine

    def _land(self, key: str, got: Entry | Completion | None, hint: int | None) -> None:
        """End the flight of ``key``, its call's hint ``hint``: its followers get ``got``. (A
        flight led without its key lands itself: ``_Unkeyed.land``.)"""
        shared = self.shared
        with shared.lock:
            waiters = shared.flights.pop(key, ())
            if hint is not None:
                left = shared.keyed_hints.pop(hint, 1) - 1
                if left:
                    shared.keyed_hints[hint] = left
        if waiters:
            _hand_out(waiters, got)

    async def _from_others(self, key: str, call: Call) -> tuple[Entry | None, str | None]:
        """Redis only: take the lock of ``key``, or wait for the process holding it to store
        its answer. Returns (the answer, None) or (None, the lock's token or None)."""
        store = self.shared.store
        if not (isinstance(store, RedisStore) and self.shared.up()):
            return None, None
        deadline = time.monotonic() + self.settings.lock_ttl
        pause = 0.01
        try:
            while True:
                token = await store.lock(key, self.settings.lock_ttl)
                if token is not None:
                    # The holder before us may have stored its answer and let go just now.
                    entry = await self._lookup(key, call)
                    if entry is not None:
                        await self._unlock(key, token)
                        return entry, None
                    return None, token
                # Another process is asking: its answer or the end of its lock, whichever first.
                while await store.locked(key):
                    if time.monotonic() >= deadline:
                        return None, None
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _POLL_MAX)
                    entry = await self._lookup(key, call)
                    if entry is not None:
                        return entry, None
                entry = await self._lookup(key, call)
                if entry is not None:
                    return entry, None
        except Exception as exc:
            self.shared.failed(exc, "taking the single-flight lock")
            return None, None

    async def _unlock(self, key: str, token: str | None) -> None:
        if token is not None and isinstance(self.shared.store, RedisStore):
            try:
                await self.shared.store.unlock(key, token)
            except Exception as exc:
                self.shared.failed(exc, "releasing the single-flight lock")

    # -- the two ways to call ----------------------------------------------------------------------

    async def complete(self, call: Call, run: Complete) -> Completion:
        if call.cache is False:
            return await run(call)
        refresh = call.cache == "refresh"
        lead = self._lead(call, refresh)
        if type(lead) is _Unkeyed:
            # A miss known without its key (a refresh reads nothing, and needs none either):
            # the writer thread makes it, with the other answers it writes, of the request the
            # attempt builds (a group's, of its call: its key is made of that).
            miss = lead
            registry = self.registry
            noting = call.wire != "group"
            if noting:
                registry.note_request(call)
            got: Completion | None = None
            try:
                c = got = await run(call)
            finally:
                miss.land(got, registry.take_request(call) if noting else None)
            return c
        hint = lead
        assert not isinstance(hint, _Unkeyed)
        keyed = self._key(call)
        if keyed is None:
            return await run(call)
        key, probed = keyed
        if refresh:
            self._reuse(call, probed)
            c = await run(call)
            kept = self._keep(key, hint, call, c, None)
            if kept is not None:
                await kept
            return c
        while True:
            follow = self._join(key, hint)
            if follow is not None:
                entry = await follow
                if entry is not None:
                    return self._hit(key, entry)
                continue  # the leader failed: one of its followers asks now
            answer: Entry | Completion | None = None
            token = None
            try:
                entry, token = await self._find(key, call, hint)
                if entry is not None:
                    answer = entry
                    return self._hit(key, entry)
                self._reuse(call, probed)
                c = answer = await run(call)
                kept = self._keep(key, hint, call, c, None)
                if kept is not None:
                    await kept
                return c
            finally:
                self._land(key, answer, hint)
                if token is not None:
                    await self._unlock(key, token)

    async def stream(self, call: Call, run: Stream) -> AsyncGenerator[StreamEvent, None]:
        refresh = call.cache == "refresh"
        lead = None if call.cache is False else self._lead(call, refresh)
        # A miss known without its key (see complete): the writer thread makes its key of the
        # call (not of the stream's request: the key is chat()'s request's).
        miss = lead if type(lead) is _Unkeyed else None
        hint = lead if miss is None else miss.hint
        assert not isinstance(hint, _Unkeyed)
        key: str | None = None
        if miss is None:
            # (Its key's request is probed as chat()'s: not the stream's, which builds its own.)
            keyed = None if call.cache is False else self._key(call)
            if keyed is None:
                async with aclosing(run(call)) as events:
                    async for event in events:
                        yield event
                return
            key = keyed[0]
        while True:
            # A refresh neither reads nor joins: it asks, whoever else is asking.
            follow = None if refresh or key is None else self._join(key, hint)
            if follow is not None:
                assert key is not None
                entry = await follow
                if entry is not None:
                    for event in replay(entry, self._hit(key, entry)):
                        yield event
                    return
                continue
            got: Entry | None = None
            token = None
            try:
                if key is not None and not refresh:
                    entry, token = await self._find(key, call, hint)
                    if entry is not None:
                        got = entry
                        hit = self._hit(key, entry)
                        for event in replay(entry, hit):
                            yield event
                        return
                deltas: list[Delta] = []
                async with aclosing(run(call)) as events:
                    async for event in events:
                        if isinstance(event, Done):
                            # Kept before the caller sees Done: a caller that stops reading
                            # there has had the whole answer.
                            got = Entry(VERSION, event.completion, deltas)
                            if miss is not None:
                                miss.land(got, None)
                            else:
                                assert key is not None
                                kept = self._keep(key, hint, call, event.completion, deltas)
                                if kept is not None:
                                    await kept
                        else:
                            deltas.append(event)
                        yield event
                return
            finally:
                if miss is not None:
                    if got is None:
                        miss.land(None, None)
                elif not refresh and key is not None:
                    self._land(key, got, hint)
                if token is not None and key is not None:
                    await self._unlock(key, token)
