"""The router on a Redis Cluster of three real masters: limits are shared between
replicas (their scripts' keys stay in one slot), the response cache answers, and the
spill stream keeps the rows of a replica that died during a PostgreSQL outage."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.cluster import RedisCluster
from xrouter_router.cache import PREFIX
from xrouter_router.ledger.spillstream import STREAM

from .conftest import KEY, KEY2, StartRouter, base_config, db_config
from .haservers import RedisClusterSet
from .servers import FakeProvider, Postgres, Router

MSG: Any = [{"role": "user", "content": "one slot each"}]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterSet]:
    c = RedisClusterSet()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture
def rc(cluster: RedisClusterSet) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(cluster.url)
    client.flushall()  # every primary
    yield client
    client.close()


def _post(router: Router, model: str = "echo", key: str = KEY) -> httpx.Response:
    return httpx.post(
        router.url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": MSG},
    )


def _cluster(config: dict[str, Any]) -> dict[str, Any]:
    config["redis"] = {"url": {"env": "TEST_REDIS_URL"}, "cluster": True, "failMode": "closed"}
    return config


def test_limits_are_shared_across_replicas_through_the_cluster(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    cluster: RedisClusterSet,
    rc: RedisCluster,
) -> None:
    config = _cluster(base_config(provider.url, tmp_path))
    config["keys"][0]["limits"] = {"rpm": 3, "tpm": 100000, "maxConcurrent": 2}  # acquire, settle
    config["keys"][1]["limits"] = {"rpm": 300000}  # leased in blocks (the lease script)
    env = {"TEST_REDIS_URL": cluster.url}
    a, b = start_router(config, env), start_router(config, env)
    # Fail-closed: a script the cluster refused (CROSSSLOT) would answer 503, not 200.
    assert [_post(a).status_code, _post(b).status_code, _post(a).status_code] == [200, 200, 200]
    refused = _post(b)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rpm_limit_exceeded"
    assert [_post(a, key=KEY2).status_code for _ in range(5)] == [200] * 5
    counters = {k.decode() for node in cluster.nodes for k in node.client().keys("xr:{alpha}:*")}
    assert any(":rpm:" in k for k in counters) and any(":tpm:" in k for k in counters)
    # All of a key's counters on the one node that owns its slot.
    owners = {n.port for n in cluster.nodes if n.client().keys("xr:{alpha}:*")}
    assert len(owners) == 1
    assert a.metric("xrouter_redis_up") == b.metric("xrouter_redis_up") == 1


def test_the_response_cache_answers_from_the_cluster(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    cluster: RedisClusterSet,
    rc: RedisCluster,
) -> None:
    config = _cluster(base_config(provider.url, tmp_path))
    target = {"provider": "fake", "model": "cached-up"}
    config["models"].append({"name": "cached", "targets": [target], "cache": {"ttlSeconds": 60}})
    env = {"TEST_REDIS_URL": cluster.url}
    a, b = start_router(config, env), start_router(config, env)
    first, second = _post(a, "cached"), _post(b, "cached")
    assert (first.headers["x-xrouter-cache"], second.headers["x-xrouter-cache"]) == ("miss", "hit")
    assert second.json()["choices"] == first.json()["choices"]
    assert provider.stats().get("cached-up", 0) == 1
    assert any(n.client().keys("xr:" + PREFIX + "*") for n in cluster.nodes)


def test_a_replica_killed_in_a_postgres_outage_loses_no_row_through_the_cluster_stream(
    start_router: StartRouter,
    provider: FakeProvider,
    tmp_path: Path,
    database: tuple[Postgres, str],
    cluster: RedisClusterSet,
    rc: RedisCluster,
) -> None:
    pg, name = database
    env = {"TEST_DATABASE_URL": pg.dsn(name), "TEST_REDIS_URL": cluster.url}
    pg.stop()
    old = start_router(_cluster(db_config(provider.url, tmp_path, tmp_path / "pod-a")), env)
    served = []
    for _ in range(50):
        r = _post(old)
        assert r.status_code == 200
        served.append(r.headers["x-request-id"])
    deadline = time.monotonic() + 10
    while rc.xlen(STREAM) < 50:
        assert time.monotonic() < deadline, f"only {rc.xlen(STREAM)} rows reached the cluster stream"
        time.sleep(0.2)
    old.stop(sig=signal.SIGKILL)
    shutil.rmtree(tmp_path / "pod-a", ignore_errors=True)  # the pod and its emptyDir are gone
    pg.start()
    start_router(_cluster(db_config(provider.url, tmp_path, tmp_path / "pod-b")), env)
    deadline = time.monotonic() + 15
    while pg.sql("SELECT count(*) FROM xrouter_usage", name) != "50":
        assert time.monotonic() < deadline, "rows spilled to the cluster stream were lost"
        time.sleep(0.2)
    assert sorted(pg.sql("SELECT request_id FROM xrouter_usage", name).split()) == sorted(served)
    assert rc.xlen(STREAM) == 0

