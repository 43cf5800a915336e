"""The router's Redis client, for each topology ``redis`` can name: one server (``url``),
a master behind Sentinel (``sentinel``), or a Redis Cluster (``url`` with ``cluster``).

Every caller (limits, the response cache, the spill stream) gets a client that answers
the same commands whatever the topology, so none of them knows which one it talks to.
Their multi-key scripts keep all their keys in one hash slot (``xr:{name}...``), which
a cluster requires; tests/router/test_redisconn.py checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from .config import RedisConfig
from .secrets import override, read_secret

# The limiter decides on every request; a Redis that does not answer within this is
# treated as down (limits fall back to the fail mode) rather than holding requests.
TIMEOUT = 0.5
# A spilled usage row counts as kept once one replica holds it too (WAIT), so that a
# failover right after the write cannot lose it; within this, else it goes to disk too.
SPILL_ACK_MS = 1000


@dataclass(frozen=True)
class RedisTarget:
    """What to connect to, secrets read: compared on reload, so a client is only rebuilt
    when a rotated Secret (or the config) changed it. Never logged (it holds passwords)."""

    url: str | None = None
    cluster: bool = False
    master_name: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    username: str | None = None
    password: str | None = None
    db: int = 0
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def __repr__(self) -> str:  # no secrets in tracebacks
        return f"RedisTarget(cluster={self.cluster}, master_name={self.master_name!r})"


def target(config: RedisConfig) -> RedisTarget | None:
    """Where Redis is, or None without Redis. ``$REDIS_URL`` overrides ``url``. Raises
    SecretError (naming the field) when a secret cannot be read."""
    s = config.sentinel
    if s is None:
        url = override("REDIS_URL", config.url, "redis.url")
        return RedisTarget(url=url, cluster=config.cluster) if url else None
    # "[::1]:26379": an IPv6 address is bracketed only to set it apart from the port.
    sentinels = tuple((h.strip("[]"), int(p)) for h, _, p in (a.rpartition(":") for a in s.addresses))
    return RedisTarget(
        master_name=s.master_name,
        sentinels=sentinels,
        username=s.username,
        password=read_secret(s.password, "redis.sentinel.password") if s.password else None,
        db=s.db,
        sentinel_username=s.sentinel_username,
        sentinel_password=(
            read_secret(s.sentinel_password, "redis.sentinel.sentinelPassword")
            if s.sentinel_password
            else None
        ),
    )


class _SentinelRedis(Redis):
    """The master's client; closing it also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def client(t: RedisTarget | None) -> Redis | None:
    """A client for ``t`` (None for None). Connections open lazily, so this never blocks.

    A RedisCluster is returned typed as Redis: it answers every command the router sends
    (pipelined EVALSHA, GET/SET, the stream commands), routing each to the node owning
    its key, which the cluster tests check against real servers."""
    if t is None:
        return None
    timeouts: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
    if t.master_name is not None:
        sentinel = Sentinel(
            list(t.sentinels),
            sentinel_kwargs={**timeouts, "username": t.sentinel_username, "password": t.sentinel_password},
        )
        master = sentinel.master_for(
            t.master_name,
            redis_class=_SentinelRedis,
            username=t.username,
            password=t.password,
            db=t.db,
            **timeouts,
        )
        return cast(Redis, master)
    assert t.url is not None
    if t.cluster:
        return cast(Redis, RedisCluster.from_url(t.url, **timeouts))
    return Redis.from_url(t.url, **timeouts)


def replica_acks(redis: Redis) -> int:
    """How many replicas must hold a spilled row before it counts as kept: one behind
    Sentinel (whose failover promotes a replica), none otherwise."""
    pool = getattr(redis, "connection_pool", None)  # a RedisCluster has one per node
    return 1 if isinstance(pool, SentinelConnectionPool) else 0
