"""The key strategy ``sticky``: each conversation stays on one API key while that key is healthy,
so the provider's prompt cache (kept per key, or per the account behind it) keeps hitting.

A conversation is the call's ``session_id`` when it has one, else its *opening*: the messages
up to and including the first user message (the system prompt, any developer or seeded
assistant messages before it, and the first user message). The opening is the part of a chat's
history that every later turn repeats unchanged, tool turns included, so the turns of one
``@llm_chat`` conversation share it while two chats with the same system prompt but different
first questions do not: they spread over the keys like independent conversations. (A prefix
shorter than that, the system prompt alone, would put every chat of one agent on one key; a
longer one would change from turn to turn.) When ``@llm_chat`` compacts a long history its
opening changes, and so may its key: the provider's cache of the old prefix is useless then
anyway.

Keys are chosen by rendezvous (highest random weight) hashing: every key scores the
conversation with a hash keyed by the key's fingerprint, and the highest-scoring healthy key
wins. Hence:

- a conversation stays on its key while that key is healthy, in every process and every pool
  of those keys: the choice needs no state, so there is none to lose, share or bound;
- with many conversations each key is the first choice of an equal share;
- when its key is cooling down or disabled, a conversation goes to its next key in its own
  order and stays there while the first one rests; the conversations of a resting key spread
  evenly over the others, as round robin would spread them;
- when the key is healthy again the conversation goes back to it. Staying where it fell back to
  would keep that key's cache warm one turn longer, but would leave a key that came back with no
  conversations while the others carry its share, and would need per-conversation memory; going
  back keeps the spread even and the strategy stateless, and the home key's cache often still
  holds the older prefix;
- adding a key to the list moves only the conversations that now score it highest (about one in
  n+1, all to the new key); removing one moves only its own conversations. Keys are told apart
  by fingerprint, not position, so reordering the list moves nothing.

Select it with ``APIKeyPool(keys, provider, strategy="sticky")`` or ``"key_strategy":
"sticky"`` in provider.json."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from llmplug import APIKeyPool, Call, KeyLease, Message, hookimpl

__all__ = ["STRATEGY", "conversation_id", "opening", "ranking", "select_key"]

#: The name this plugin answers ``select_key`` for.
STRATEGY = "sticky"

_encode = msgspec.json.Encoder().encode


def opening(messages: Sequence[Message]) -> Sequence[Message]:
    """The messages that name a conversation without a ``session_id``: everything up to and
    including the first user message (the first message alone when there is no user message)."""
    for i, m in enumerate(messages):
        if m.role == "user":
            return messages[: i + 1]
    return messages[:1]


def conversation_id(call: Call) -> bytes:
    """The conversation ``call`` belongs to: its ``session_id``, else a hash of its opening.
    The two are prefixed apart, so a session named like a hash is still its own."""
    if call.session_id is not None:
        return b"s:" + call.session_id.encode()
    digest = hashlib.blake2b(_encode(list(opening(call.messages))), digest_size=16).digest()
    return b"h:" + digest


def _score(conversation: bytes, fingerprint: str) -> int:
    # Keyed by the key's fingerprint (a hash of the key, never the key), so a key's score for a
    # conversation does not depend on which other keys the pool has or in what order.
    digest = hashlib.blake2b(conversation, digest_size=8, key=fingerprint.encode()).digest()
    return int.from_bytes(digest, "big")


def ranking(conversation: bytes, fingerprints: Sequence[str]) -> list[int]:
    """Indexes of the keys in ``conversation``'s order of preference: its home key first, then
    where it goes while the keys before are resting."""
    scores = [_score(conversation, fp) for fp in fingerprints]
    return sorted(range(len(fingerprints)), key=lambda i: (-scores[i], i))


@hookimpl
def select_key(strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
    if strategy != STRATEGY:
        return None
    n = len(pool)
    if n == 1:
        return pool.lease(0)
    conversation = conversation_id(call)
    fingerprints = pool.fingerprints
    # The core asks only while some key is healthy; asked otherwise, stay on the home key.
    candidates = pool.healthy() or range(n)
    best = max(candidates, key=lambda i: (_score(conversation, fingerprints[i]), -i))
    return pool.lease(best)
