"""PostgreSQL: the connection pool, schema migrations and the key table."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import orjson

log = logging.getLogger("xrouter.db")

# Any constant shared by all replicas: migrations run under this advisory lock, so
# many replicas can start at once and exactly one applies each step.
MIGRATION_LOCK = 0x58524F55  # "XROU"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE xrouter_usage (
        request_id text PRIMARY KEY,
        key_name text NOT NULL,
        model text NOT NULL,
        provider text NOT NULL,
        upstream_model text NOT NULL,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        cached_tokens integer NOT NULL,
        cost_usd double precision NOT NULL,
        status integer NOT NULL,
        latency_ms double precision NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE INDEX xrouter_usage_key_time ON xrouter_usage (key_name, created_at);
    CREATE TABLE xrouter_keys (
        name text PRIMARY KEY,
        sha256 text NOT NULL UNIQUE,
        limits jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz
    );
    """,
    # The response cache: which rows were answered from it (see usagerow.UsageRow).
    """
    ALTER TABLE xrouter_usage ADD COLUMN cache_status text;
    """,
    # Rows whose token counts are the router's estimate (meter.py). A constant default:
    # PostgreSQL 11+ adds it without rewriting the table, so it is quick on a large one.
    # Replicas of the previous version keep writing (their staging tables lack the
    # column, and INSERT ... SELECT * fills it with the default).
    """
    ALTER TABLE xrouter_usage ADD COLUMN IF NOT EXISTS estimated boolean NOT NULL DEFAULT false;
    """,
    # Rows of models priced nowhere (pricing.py): their cost_usd is unknown, not 0.
    # NULL on rows written before this step.
    """
    ALTER TABLE xrouter_usage ADD COLUMN IF NOT EXISTS unpriced boolean;
    """,
]

CONNECT_TIMEOUT = 3.0
# Raised (outside asyncpg's PostgresError and InterfaceError) when every host of a
# multi-host URL with target_session_attrs=read-write is a standby: mid-failover, an
# outage like any other.
NoWritableHost = asyncpg.exceptions.TargetServerAttributeNotMatched


async def connect(dsn: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn, min_size=0, max_size=4, timeout=CONNECT_TIMEOUT, command_timeout=10
    )
    return pool


async def migrate(pool: asyncpg.Pool) -> int:
    """Apply pending migrations under an advisory lock. Returns the schema version."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS xrouter_schema (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM xrouter_schema")
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO xrouter_schema (version) VALUES ($1)", version)
                log.info("applied schema migration %d", version)
            return len(MIGRATIONS)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def active_keys(pool: asyncpg.Pool) -> list[tuple[str, str, dict[str, Any]]]:
    rows = await pool.fetch("SELECT name, sha256, limits FROM xrouter_keys WHERE revoked_at IS NULL")
    return [(r["name"], r["sha256"], orjson.loads(r["limits"])) for r in rows]


async def list_keys(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT name, limits, created_at, revoked_at FROM xrouter_keys ORDER BY name")
    return [
        {
            "name": r["name"],
            "limits": orjson.loads(r["limits"]),
            "created_at": r["created_at"].isoformat(),
            "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
        }
        for r in rows
    ]


async def create_key(pool: asyncpg.Pool, name: str, sha256: str, limits: dict[str, Any]) -> bool:
    status = await pool.execute(
        "INSERT INTO xrouter_keys (name, sha256, limits) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        name,
        sha256,
        orjson.dumps(limits).decode(),
    )
    return bool(status.endswith(" 1"))


async def revoke_key(pool: asyncpg.Pool, name: str) -> bool:
    status = await pool.execute(
        "UPDATE xrouter_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", name
    )
    return bool(status.endswith(" 1"))


async def set_limits(pool: asyncpg.Pool, name: str, limits: dict[str, Any]) -> bool:
    status = await pool.execute(
        "UPDATE xrouter_keys SET limits = $2 WHERE name = $1 AND revoked_at IS NULL",
        name,
        orjson.dumps(limits).decode(),
    )
    return bool(status.endswith(" 1"))
