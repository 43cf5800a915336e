"""spec.redis (Sentinel, Cluster) and spec.database.cnpg: refused when contradictory,
naming the field; rendered into a router config the router's own parser reads back,
with the Secret keys projected as files and the NetworkPolicy reaching the sentinels."""

from __future__ import annotations

from typing import Any

import pytest
from test_op_render import xr
from xrouter_operator.models import secret_refs
from xrouter_operator.render import RenderError, RenderInputs, parse, render
from xrouter_router.config import RouterConfig, parse_config

INPUTS = RenderInputs(admin_key="k")
URL = {"name": "redis", "key": "url"}
SENTINEL: dict[str, Any] = {
    "masterName": "mymaster",
    "addresses": ["redis-node-0.redis-headless:26379", "10.0.0.7:26380", "[fd00::1]:26379"],
    "passwordSecretRef": {"name": "redis", "key": "redis-password"},
    "sentinelPasswordSecretRef": {"name": "redis-sentinel", "key": "password"},
}


def _objects(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in render(parse(obj), INPUTS)}


def _router_sees(objs: dict[str, dict[str, Any]]) -> RouterConfig:
    return parse_config(objs["ConfigMap"]["data"]["config.json"])


def _projected(pod_spec: dict[str, Any]) -> dict[str, str]:
    """file path in the secrets volume -> Secret/key it comes from."""
    out = {}
    for volume in pod_spec["volumes"]:
        for source in volume.get("projected", {}).get("sources", []):
            secret = source.get("secret")
            for item in (secret or {}).get("items", []):
                out[item["path"]] = f"{secret['name']}/{item['key']}"
    return out


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"redis": {"urlSecretRef": URL, "sentinel": SENTINEL}}, "spec.redis: set either urlSecretRef"),
        ({"redis": {"failMode": "closed"}}, "spec.redis: set either urlSecretRef or sentinel"),
        ({"redis": {"cluster": True, "sentinel": SENTINEL}}, "spec.redis: cluster excludes sentinel"),
        ({"redis": {"sentinel": {**SENTINEL, "addresses": ["redis:port"]}}}, "spec.redis.sentinel.addresses"),
        ({"redis": {"sentinel": {**SENTINEL, "addresses": []}}}, "spec.redis.sentinel.addresses"),
        ({"database": {"urlSecretRef": URL, "cnpg": {"cluster": "pg"}}}, "set either urlSecretRef or cnpg"),
        ({"database": {"port": 5432}}, "spec.database: set either urlSecretRef or cnpg"),
        ({"database": {"cnpg": {"cluster": "Not_A_Name"}}}, "spec.database.cnpg.cluster"),
    ],
)
def test_contradictory_topologies_are_refused_naming_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(RenderError, match=needle.replace("[", r"\[")):
        parse(xr(**spec))


def test_sentinel_reaches_the_router_with_its_passwords_as_files() -> None:
    objs = _objects(xr(redis={"sentinel": SENTINEL, "failMode": "closed"}))
    redis = _router_sees(objs).redis
    assert redis.url is None and redis.fail_mode == "closed" and redis.sentinel is not None
    s = redis.sentinel
    assert (s.master_name, s.addresses) == ("mymaster", SENTINEL["addresses"])
    assert s.password is not None and s.sentinel_password is not None
    files = _projected(objs["Deployment"]["spec"]["template"]["spec"])
    assert files["redis-password"] == "redis/redis-password"
    assert files["redis-sentinel-password"] == "redis-sentinel/password"
    assert s.password.file and s.password.file.endswith("/redis-password")
    assert s.sentinel_password.file and s.sentinel_password.file.endswith("/redis-sentinel-password")
    # The pods reach the sentinels' ports as well as the master's.
    egress = objs["NetworkPolicy"]["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"] if p["protocol"] == "TCP"}
    assert {6379, 26379, 26380} <= ports
    # A missing password Secret is reported under its own field.
    paths = [path for path, _ in secret_refs(parse(xr(redis={"sentinel": SENTINEL})).spec)]
    assert "spec.redis.sentinel.passwordSecretRef" in paths
    assert "spec.redis.sentinel.sentinelPasswordSecretRef" in paths


def test_cluster_reaches_the_router() -> None:
    redis = _router_sees(_objects(xr(redis={"urlSecretRef": URL, "cluster": True}))).redis
    assert redis.cluster and redis.url is not None and redis.sentinel is None


def test_cnpg_cluster_uses_its_app_secret_whose_uri_names_the_rw_service() -> None:
    backup = {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}}
    spec = {"database": {"cnpg": {"cluster": "pg"}}, "backup": backup}
    objs = _objects(xr(**spec))
    database = _router_sees(objs).database
    assert database.url is not None and database.url.file and database.url.file.endswith("/database-url")
    assert _projected(objs["Deployment"]["spec"]["template"]["spec"])["database-url"] == "pg-app/uri"
    # The backup dumps the same database, through the same Secret key.
    job = objs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert _projected(job)["database-url"] == "pg-app/uri"
    assert ("spec.database.cnpg", "pg-app", "uri") in [
        (path, ref.name, ref.key) for path, ref in secret_refs(parse(xr(**spec)).spec)
    ]
