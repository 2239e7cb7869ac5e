"""A Redis Cluster of three masters: every key of a provider shares one hash slot, so the
multi-key scripts run."""

from __future__ import annotations

from llmplug import APIKeyPool
from llmplug_redis import backend

from ._redis import RedisCluster


async def test_the_scripts_run_on_a_cluster(redis_cluster: RedisCluster, prefix: str) -> None:
    pools = [APIKeyPool(["sk-a", "sk-b"], "prov", shared=False) for _ in range(2)]
    spec = {"kind": "redis", "url": redis_cluster.url, "prefix": prefix, "cluster": True}
    one, two = (
        backend(spec, pool=p, model="m", capacity=5, refill_rate=100.0, tokens_per_minute=6000)
        for p in pools
    )
    await one.limiter.acquire(1.0)  # the rate bucket, the health hash, both lease sets
    assert one.token_limiter is not None
    await one.token_limiter.acquire(500.0)
    held = pools[0].lease(1)
    pools[0].cool_down(0, 30, "rate limited (429)")
    assert one.health is not None
    await one.health.flush()
    await two.limiter.acquire(1.0)
    assert pools[1].status()[0]["state"] == "cooling"
    assert pools[1].in_flight(1) == 1
    # Every key of the provider is on one node: the hash tag holds them in one slot.
    counts = [int(n.cli("dbsize")) for n in redis_cluster.nodes]
    assert sorted(counts)[:2] == [0, 0] and max(counts) >= 3
    held.release()
    await one.health.flush()
    await two.limiter.acquire(1.0)
    assert pools[1].in_flight(1) == 0
    await one.limiter.conn.aclose()
