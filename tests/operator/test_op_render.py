"""Render behaviour beyond the golden files: properties every spec must keep."""

from __future__ import annotations

import json
from typing import Any

import pytest
from xrouter_operator.render import RenderError, RenderInputs, parse, render

MONITORING = RenderInputs(admin_key="k", monitoring_kinds=frozenset({"ServiceMonitor", "PrometheusRule"}))


def xr(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [{"name": "m", "targets": [{"provider": "mock", "model": "echo"}]}],
    }
    base.update(spec)
    return {
        "apiVersion": "xrouter.io/v1alpha1",
        "kind": "XRouter",
        "metadata": {"name": "x", "namespace": "ns", "uid": "u"},
        "spec": base,
    }


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(m for m in manifests if m["kind"] == kind)


@pytest.mark.parametrize("port", [80, 443, 8080, 9090])
def test_service_monitor_scrapes_a_port_the_service_has(port: int) -> None:
    out = render(parse(xr(service={"port": port})), MONITORING)
    ports = one(out, "Service")["spec"]["ports"]
    assert len({p["port"] for p in ports}) == len(ports), ports  # the API server refuses duplicates
    scraped = {e["port"] for e in one(out, "ServiceMonitor")["spec"]["endpoints"]}
    assert scraped <= {p["name"] for p in ports}, (scraped, ports)
    http = next(p for p in ports if p["name"] == "http")
    assert http["port"] == port


FULL_SPEC: dict[str, Any] = {
    "providers": [
        {"name": "openai", "type": "openai", "baseUrl": "https://api.openai.com/v1",
         "apiKeySecretRef": {"name": "llm", "key": "openai"}},
        {"name": "claude", "type": "anthropic", "baseUrl": "https://api.anthropic.com",
         "apiKeySecretRef": {"name": "llm", "key": "anthropic"}},
    ],
    "models": [{"name": "m", "targets": [{"provider": "openai", "model": "gpt"}]}],
    "keys": [{"name": "team-a", "secretKeyRef": {"name": "keys", "key": "a"}}],
    "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
    "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
    "autoscaling": {"enabled": True},
    "backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}},
}  # fmt: skip


def _pod_specs(out: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    dep = one(out, "Deployment")["spec"]["template"]["spec"]
    cron = one(out, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return {"Deployment": dep, "CronJob": cron}


def _projected(pod: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """path -> (secret, key) over the pod's projected volumes."""
    out = {}
    for v in pod["volumes"]:
        for src in v.get("projected", {}).get("sources", []):
            for item in src["secret"]["items"]:
                out[item["path"]] = (src["secret"]["name"], item["key"])
    return out


def test_no_secret_reaches_a_container_as_an_environment_variable() -> None:
    out = render(parse(xr(**FULL_SPEC)), MONITORING)
    for kind, pod in _pod_specs(out).items():
        for c in pod["containers"]:
            for e in c.get("env", []):
                assert "secretKeyRef" not in e.get("valueFrom", {}), (kind, e)  # CKV_K8S_35
            assert "envFrom" not in c, kind


def test_every_secret_the_config_names_is_a_mounted_file() -> None:
    out = render(parse(xr(**FULL_SPEC)), MONITORING)
    config = json.loads(one(out, "ConfigMap")["data"]["config.json"])
    named = [config["adminKey"]["file"], config["redis"]["url"]["file"], config["database"]["url"]["file"]]
    named += [p["apiKey"]["file"] for p in config["providers"]]
    named += [k["secret"]["file"] for k in config["keys"]]
    pod = _pod_specs(out)["Deployment"]
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    projected = next(v for v in pod["volumes"] if "projected" in v)
    mount = mounts[projected["name"]]
    assert mount["readOnly"] is True
    files = {f"{mount['mountPath']}/{path}": ref for path, ref in _projected(pod).items()}
    assert sorted(named) == sorted(files)
    assert files[config["providers"][1]["apiKey"]["file"]] == ("llm", "anthropic")
    assert files[config["adminKey"]["file"]] == ("x-admin-key", "admin-key")
    assert files[config["database"]["url"]["file"]] == ("pg", "url")
    # Only what the config names: no other key of those Secrets reaches the pod.
    assert len(files) == 6


def test_backup_container_is_hardened_like_the_router() -> None:
    out = render(parse(xr(**FULL_SPEC)), MONITORING)
    pods = _pod_specs(out)
    cron, router = pods["CronJob"], pods["Deployment"]
    assert cron["securityContext"] == router["securityContext"]
    assert cron["securityContext"]["runAsUser"] >= 10000  # CKV_K8S_40
    assert cron["securityContext"]["runAsNonRoot"] is True
    c = cron["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] >= 10000
    res = c["resources"]
    assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"]  # CKV_K8S_10, 12, 13
    assert _projected(cron) == {"database-url": ("pg", "url")}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DATABASE_URL_FILE"].endswith("/database-url")
    assert 'cat "$DATABASE_URL_FILE"' in c["command"][-1]


def test_backup_resources_come_from_the_spec() -> None:
    spec = {**FULL_SPEC, "backup": {**FULL_SPEC["backup"], "resources": {
        "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi", "cpu": "2"}}}}  # fmt: skip
    c = _pod_specs(render(parse(xr(**spec)), MONITORING))["CronJob"]["containers"][0]
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"memory": "2Gi", "cpu": "2"},
    }


def test_a_builder_failure_is_a_render_error_naming_the_field() -> None:
    # A model built without validation (as from an object that bypassed the CRD and
    # the models): the NetworkPolicy builder still names the field.
    good = parse(
        xr(
            providers=[{"name": "vllm", "type": "openai", "baseUrl": "http://x:8000"}],
            models=[{"name": "m", "targets": [{"provider": "vllm", "model": "llama"}]}],
        )
    )
    bad = good.spec.providers[0].model_copy(update={"base_url": "http://x:99999"})
    obj = good.model_copy(update={"spec": good.spec.model_copy(update={"providers": [bad]})})
    with pytest.raises(RenderError, match=r"spec\.providers\[vllm\]\.baseUrl: the port must be in 1-65535"):
        render(obj)
