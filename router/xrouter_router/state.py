"""``State``: what the endpoints share, passed to them explicitly: the compiled
config (``runtime``, swapped whole on reload), the keys, the limiter, the usage
recorder, the breakers (in ``targets``), the upstream clients, the response cache
and the metrics."""

from __future__ import annotations

import logging

from .auth import KeyInfo, KeyStore
from .cache import ResponseCache
from .clients import Clients
from .config import Limits, RouterConfig
from .ledger import db
from .ledger.budgetguard import BudgetGuard
from .ledger.budgets import NONE
from .ledger.limits import Limiter
from .ledger.usage import UsageRecorder
from .metrics import Metrics
from .owners import Owners
from .redisconn import RedisTarget, client, target
from .runtime import Runtime, TargetRegistry, build
from .secrets import override
from .telemetry import Telemetry, otlp_configured

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
        ns = self.namespace = config.redis.namespace
        # The limiter's Redis client doubles as the shared spill: rows that PostgreSQL refuses go to a
        # Redis stream any replica replays, so a pod replaced during an outage loses none.
        self.usage = UsageRecorder(
            dsn, self.metrics, d.spill_dir, d.batch_size, d.flush_interval_seconds, redis=redis, namespace=ns
        )
        self.limiter = Limiter(
            redis, config.redis.fail_mode, self.metrics, total, self.usage.spent, namespace=ns
        )
        # A reservation outlives its request's retries and fallbacks (4x the longest
        # ``total``); only a dead replica's reservations wait that long to be freed.
        self.limiter.budget = BudgetGuard(self.limiter, self.usage, int((4 * total + 5) * 1000))
        self.cache = ResponseCache(lambda: self.limiter.redis, self.metrics, ns)
        self.owners = Owners(lambda: self.limiter.redis, ns)
        # None unless OTLP export is configured: then telemetry costs nothing.
        self.telemetry = Telemetry() if otlp_configured() else None
        self.ready = False
        self._db_keys: dict[str, KeyInfo] = {}  # as read from the database, shadowed ones too
        self._shadowed: list[str] = []
        self._budgets()

    def apply(self, config: RouterConfig) -> None:
        """Swap in a new config, all or nothing: everything that can fail (a secret,
        the Redis URL) is read and built before the first assignment, so a refused
        reload leaves the old config serving whole, as its log line says."""
        redis_at, dsn = _urls(config)
        runtime = build(config, self.targets, self.clients)
        # Rotated in its Secret (mounted as a file), or re-topologized (URL, Sentinel, Cluster).
        rotated = redis_at != self._redis_at
        redis = client(redis_at) if rotated else None  # a malformed URL raises here
        # From here on nothing raises.
        self.runtime = runtime
        self.keys.config_keys = runtime.keys
        self._serve_db_keys(self._db_keys)  # a new config key may shadow a database key
        self.limiter.fail_mode = config.redis.fail_mode
        if config.redis.namespace != self.namespace:
            log.warning("redis.namespace changed; that takes effect on restart")
        if rotated:
            self._redis_at = redis_at
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
        self._db_keys = fresh
        self._serve_db_keys(fresh)
        self._budgets()

    def _serve_db_keys(self, fresh: dict[str, KeyInfo]) -> None:
        """Serve the database keys but those named like a config key. A name is the
        scope of limits, budget, usage rows and cache entries: two keys sharing one
        would share all of them. The config is the operator's declared intent, so its
        key wins; the database key is refused (401) until one of them is renamed or
        revoked. Only names are logged."""
        taken = self.keys.names()
        shadowed = sorted({k.name for k in fresh.values() if k.name in taken})
        if shadowed and shadowed != self._shadowed:
            log.warning(
                "database keys named like a config key are refused until renamed or revoked: %s",
                ", ".join(shadowed),
            )
        self._shadowed = shadowed
        self.keys.db_keys = {sha: k for sha, k in fresh.items() if k.name not in taken}
