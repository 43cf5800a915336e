"""``State``: what the endpoints share, passed to them explicitly: the compiled
config (``runtime``, swapped whole on reload), the keys, the limiter, the usage
recorder, the breakers (in ``targets``), the upstream clients, the response cache
and the metrics."""

from __future__ import annotations

import logging

from . import db
from .auth import KeyInfo, KeyStore
from .budgets import NONE
from .cache import ResponseCache
from .clients import Clients
from .config import Limits, RouterConfig
from .limits import Limiter
from .metrics import Metrics
from .redisconn import RedisTarget, client, target
from .runtime import Runtime, TargetRegistry, build
from .secrets import override
from .telemetry import Telemetry, otlp_configured
from .usage import UsageRecorder

log = logging.getLogger("xrouter.state")


def _urls(config: RouterConfig) -> tuple[RedisTarget | None, str | None]:
    return target(config.redis), override("DATABASE_URL", config.database.url, "database.url")


class State:
    def __init__(self, config: RouterConfig) -> None:
        self.metrics = Metrics()
        self.targets = TargetRegistry(self.metrics)
        self.clients = Clients()
        self.runtime: Runtime = build(config, self.targets, self.clients)
        self.keys = KeyStore(self.runtime.keys)
        redis_at, dsn = _urls(config)
        self._redis_at = redis_at
        redis = client(redis_at)
        total = max(p.timeouts.total for p in config.providers)
        d = config.database
        # The limiter's Redis client doubles as the shared spill: rows that PostgreSQL refuses go to a
        # Redis stream any replica replays, so a pod replaced during an outage loses none.
        self.usage = UsageRecorder(
            dsn, self.metrics, d.spill_dir, d.batch_size, d.flush_interval_seconds, redis=redis
        )
        self.limiter = Limiter(redis, config.redis.fail_mode, self.metrics, total, self.usage.spent)
        self.cache = ResponseCache(lambda: self.limiter.redis, self.metrics)
        # None unless OTLP export is configured: then telemetry costs nothing.
        self.telemetry = Telemetry() if otlp_configured() else None
        self.ready = False
        self._budgets()

    def apply(self, config: RouterConfig) -> None:
        """Swap in a new config (raises, leaving the old one, if it cannot be built)."""
        # Read the URLs first: an unreadable secret file refuses the reload and keeps the old config.
        redis_at, dsn = _urls(config)
        runtime = build(config, self.targets, self.clients)
        self.runtime = runtime
        self.keys.config_keys = runtime.keys
        self.limiter.fail_mode = config.redis.fail_mode
        if redis_at != self._redis_at:  # rotated in its Secret (mounted as a file), or re-topologized
            self._redis_at = redis_at
            redis = client(redis_at)
            self.limiter.set_redis(redis)
            self.usage.set_redis(redis)
        self.usage.set_dsn(dsn)
        self._budgets()

    def _budgets(self) -> None:
        keys = [*self.keys.config_keys.values(), *self.keys.db_keys.values()]
        self.usage.set_budget_keys(
            {
                k.name: k.limits.budget_period
                for k in keys
                if k.limits.budget_usd is not None or k.limits.budget_period != NONE
            }
        )

    async def refresh_db_keys(self) -> None:
        if self.usage.pool is None:
            return
        try:
            rows = await db.active_keys(self.usage.pool)
        except Exception as exc:  # the database may be down; keep the keys we have
            log.warning("could not refresh keys from the database: %s", type(exc).__name__)
            return
        fresh: dict[str, KeyInfo] = {}
        for name, sha, limits in rows:
            try:
                fresh[sha] = KeyInfo(name, sha, Limits.model_validate(limits))
            except ValueError:
                log.warning("database key %s has invalid limits; skipped", name)
        self.keys.db_keys = fresh
        self._budgets()
