"""Session fixtures: a real redis-server, a real PostgreSQL and the fake provider,
on loopback; plus a factory for router processes that are stopped after each test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from .servers import FakeProvider, Postgres, RedisServer, Router, ScriptedUpstream

KEY = "sk-test-alpha"
KEY2 = "sk-test-beta"
ADMIN = "sk-admin-test"
Config = dict[str, Any]
StartRouter = Callable[..., Router]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session Redis, running and empty at the start of the test."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    import redis as redis_lib

    redis_lib.Redis.from_url(redis_server.url).flushall()
    yield redis_server
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    server = Postgres()
    server.start()
    yield server
    server.stop()
    server.cleanup()


@pytest.fixture
def database(postgres_server: Postgres) -> Iterator[tuple[Postgres, str]]:
    """A fresh database for this test: (server, database name)."""
    if postgres_server.proc is None or postgres_server.proc.poll() is not None:
        postgres_server.start()
    name = "t_" + uuid.uuid4().hex[:12]
    postgres_server.sql(f"CREATE DATABASE {name}")
    yield postgres_server, name
    if postgres_server.proc is None or postgres_server.proc.poll() is not None:
        postgres_server.start()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    server = FakeProvider()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    fake_provider.reset()
    return fake_provider


def base_config(provider_url: str, tmp: Path, **extra: Any) -> Config:
    """Providers of every type pointing at the fake, a few routes, two keys."""
    config: Config = {
        "providers": [
            {
                "name": "fake",
                "type": "openai-compatible",
                "baseUrl": provider_url + "/v1",
                "apiKey": {"env": "FAKE_API_KEY"},
                "maxRetries": 2,
                "timeouts": {"connect": 1, "firstByte": 5, "total": 10},
            },
            {"name": "fake2", "type": "openai", "baseUrl": provider_url + "/v1", "maxRetries": 0},
            {
                "name": "claude",
                "type": "anthropic",
                "baseUrl": provider_url,
                "apiKey": {"env": "FAKE_API_KEY"},
            },
            {
                "name": "azure",
                "type": "azure-openai",
                "baseUrl": provider_url,
                "apiVersion": "2024-06-01",
                "apiKey": {"env": "FAKE_API_KEY"},
            },
            {"name": "mock", "type": "mock"},
        ],
        "models": [
            {"name": "gpt", "targets": [{"provider": "fake", "model": "gpt-up"}]},
            {"name": "claude", "targets": [{"provider": "claude", "model": "claude-up"}]},
            {"name": "azure", "targets": [{"provider": "azure", "model": "my-deployment"}]},
            {"name": "echo", "targets": [{"provider": "mock", "model": "echo-1"}]},
            {"name": "slowstream", "targets": [{"provider": "fake", "model": "slowstream-400"}]},
            {"name": "slow", "targets": [{"provider": "fake2", "model": "slow-3000"}]},
            {"name": "breakstream", "targets": [{"provider": "fake2", "model": "breakstream"}]},
        ],
        "keys": [
            {"name": "alpha", "secret": {"env": "KEY_ALPHA"}},
            {"name": "beta", "secret": {"env": "KEY_BETA"}, "limits": {"allowedModels": ["echo"]}},
        ],
        "prices": {
            "gpt-up": {"input": 1.0, "output": 2.0},
            "claude-up": {"input": 3, "output": 15, "cachedInput": 0.3},
        },
        "database": {"spillDir": str(tmp / "spill"), "flushIntervalSeconds": 0.2},
        "server": {"drainSeconds": 10},
    }
    config.update(extra)
    return config


def db_config(provider_url: str, tmp: Path, spill: Path | None = None, **extra: Any) -> Config:
    """``base_config`` that writes usage rows to the database ``$TEST_DATABASE_URL`` names,
    flushing every 0.2 s and spilling to ``spill`` (default ``tmp/spill``)."""
    db: Config = {
        "url": {"env": "TEST_DATABASE_URL"},
        "spillDir": str(spill or tmp / "spill"),
        "flushIntervalSeconds": 0.2,
    }
    return base_config(provider_url, tmp, database=db, **extra)


ENV = {
    "FAKE_API_KEY": "sk-upstream-secret",
    "KEY_ALPHA": KEY,
    "KEY_BETA": KEY2,
    "ADMIN_KEY": ADMIN,
    "XROUTER_LOG_LEVEL": "INFO",
}


@pytest.fixture
def start_router(tmp_path: Path) -> Iterator[StartRouter]:
    routers: list[Router] = []

    def start(config: Config, env: dict[str, str] | None = None, wait: bool = True) -> Router:
        router = Router(config, {**ENV, **(env or {})}, workdir=tmp_path)
        router.start(wait=wait)
        routers.append(router)
        return router

    yield start
    for r in routers:
        r.stop(timeout=10)


def client(router: Router, key: str = KEY, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.url + "/v1", api_key=key, max_retries=0, **kw)


@pytest.fixture
def scripted() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream()
    server.start()
    yield server
    server.stop()
