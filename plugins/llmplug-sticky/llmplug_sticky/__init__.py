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
conversation (a 64-bit mix of the conversation's hash and the key's, taken from its
fingerprint), and the highest-scoring healthy key wins. Hence:

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

__all__ = ["STRATEGY", "conversation_id", "key_seed", "opening", "ranking", "score", "select_key"]

#: The name this plugin answers ``select_key`` for.
STRATEGY = "sticky"
#: What `llmplug plugins` lists as this plugin's names.
SERVES = {"key_strategy": [STRATEGY]}

_encode = msgspec.json.Encoder().encode


def opening(messages: Sequence[Message]) -> Sequence[Message]:
    """The messages that name a conversation without a ``session_id``: everything up to and
    including the first user message (the first message alone when there is no user message)."""
    for i, m in enumerate(messages):
        if m.role == "user":
            return messages[: i + 1]
    return messages[:1]


def conversation_id(call: Call) -> int:
    """The conversation ``call`` belongs to, as 64 bits: a hash of its ``session_id``, else of
    its opening. The two are hashed apart, so a session named like an opening is still its
    own."""
    if call.session_id is not None:
        data = b"s" + call.session_id.encode()
    else:
        data = b"h" + _encode(list(opening(call.messages)))
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def key_seed(fingerprint: str) -> int:
    """A key's 64 bits for scoring, from its fingerprint (a hash of the key, never the key): so
    a key's score for a conversation does not depend on which other keys the pool has, nor in
    what order."""
    return int.from_bytes(hashlib.sha256(fingerprint.encode()).digest()[:8], "big")


_M64 = (1 << 64) - 1


def score(conversation: int, seed: int) -> int:
    """The key's weight for the conversation: splitmix64's finalizer over the two, which turns
    a one-bit difference in either into an unrelated result, as rendezvous hashing needs."""
    x = conversation ^ seed
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def ranking(conversation: int, fingerprints: Sequence[str]) -> list[int]:
    """Indexes of the keys in ``conversation``'s order of preference: its home key first, then
    where it goes while the keys before it are resting."""
    scores = [score(conversation, key_seed(fp)) for fp in fingerprints]
    return sorted(range(len(fingerprints)), key=lambda i: (-scores[i], i))


def _seeds(pool: APIKeyPool) -> list[int]:
    # Kept in the pool's books: pools that share books have the same keys, so the same seeds.
    seeds: list[int] | None = pool.strategy_state.get("sticky_seeds")
    if seeds is None:
        seeds = pool.strategy_state["sticky_seeds"] = [key_seed(f) for f in pool.fingerprints]
    return seeds


@hookimpl
def select_key(strategy: str, pool: APIKeyPool, call: Call) -> KeyLease | None:
    if strategy != STRATEGY:
        return None
    n = len(pool)
    if n == 1:
        return pool.lease(0)
    conversation = conversation_id(call)
    seeds = _seeds(pool)
    # The core asks only while some key is healthy; asked otherwise, stay on the home key.
    candidates = pool.healthy() or range(n)
    best = max(candidates, key=lambda i: (score(conversation, seeds[i]), -i))
    return pool.lease(best)
