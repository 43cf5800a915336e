"""The router config's ``redis`` and ``database``: where limits, budgets, the cache
and the spill stream live, and where usage rows go (``config.RouterConfig``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .configbase import CamelModel, SecretSource


class RedisSentinel(CamelModel):
    """Redis behind Sentinel: the router asks the sentinels which server is the master,
    and asks again whenever that server stops answering or turns into a replica."""

    master_name: str = Field(min_length=1, description="The name the sentinels monitor the master as.")
    addresses: list[str] = Field(
        min_length=1, description="The sentinels, as host:port.", examples=[["redis-sentinel:26379"]]
    )
    username: str | None = Field(default=None, min_length=1, description="The master's ACL user.")
    password: SecretSource | None = Field(default=None, description="The master's (and replicas') password.")
    db: int = Field(default=0, ge=0)
    sentinel_username: str | None = Field(default=None, min_length=1)
    sentinel_password: SecretSource | None = Field(
        default=None, description="The sentinels' own password, when they require one."
    )

    @model_validator(mode="after")
    def _addresses(self) -> RedisSentinel:
        for a in self.addresses:
            host, _, port = a.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"redis.sentinel.addresses: {a!r} is not host:port")
        return self


class RedisConfig(CamelModel):
    # None: no Redis; limits are per process. The env var REDIS_URL overrides. With
    # cluster, the URL of any node of the Redis Cluster (it finds the others).
    url: SecretSource | None = None
    fail_mode: Literal["open", "closed"] = "open"
    # Every key this router writes (limits, budgets, the spill stream, the cache) starts
    # with "<namespace>:". Routers sharing one Redis need different namespaces, or they
    # share limits, budgets, spilled rows and cached answers. The operator sets it from
    # the XRouter's uid; the default suits one router alone on its Redis.
    namespace: str = Field(default="xr", pattern=r"^[A-Za-z0-9_.:-]{1,80}$")
    cluster: bool = Field(default=False, description="url names a node of a Redis Cluster.")
    sentinel: RedisSentinel | None = None

    @model_validator(mode="after")
    def _one_topology(self) -> RedisConfig:
        if self.sentinel is not None and self.url is not None:
            raise ValueError("redis: set either 'url' or 'sentinel', not both")
        if self.sentinel is not None and self.cluster:
            raise ValueError("redis: 'cluster' and 'sentinel' exclude each other")
        return self


class DatabaseConfig(CamelModel):
    # None: usage is not persisted. The env var DATABASE_URL overrides.
    url: SecretSource | None = None
    batch_size: int = Field(default=500, ge=1)
    flush_interval_seconds: float = Field(default=1.0, gt=0)
    # Rows that cannot reach Postgres are spilled here and replayed later.
    spill_dir: str = "/var/lib/xrouter/spill"
