"""Pure render: an XRouter (plus a few facts about the cluster) -> the manifests.

No API calls, no clock, no randomness: the same input always gives the same output,
which is what the golden tests pin down. Facts that only the cluster knows (the
existing admin key, which Prometheus CRDs exist) come in as :class:`RenderInputs`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from xrouter_router import config as rc

from .models import API_VERSION, KIND, XRouter, XRouterSpec

Manifest = dict[str, Any]

MANAGER = "xrouter-operator"
INSTANCE_LABEL = "xrouter.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ROTATE_ANNOTATION = "xrouter.io/rotate-admin-key"
ROTATION_ANNOTATION = "xrouter.io/admin-key-rotation"
CHECKSUM_ANNOTATION = "xrouter.io/config-checksum"
ADMIN_KEY_FIELD = "admin-key"
HTTP_PORT = 8080
METRICS_SERVICE_PORT = 8080
CONFIG_DIR = "/etc/xrouter"
SPILL_DIR = "/var/lib/xrouter/spill"
RUN_AS = 10001


class RenderError(ValueError):
    """The spec cannot be rendered; the message names the field."""


@dataclass(frozen=True)
class RenderInputs:
    """What render needs besides the XRouter, read from the cluster by the caller."""

    admin_key: str = "generated-by-the-operator"
    # Value of the rotate annotation the current admin key was generated for.
    admin_key_rotation: str = ""
    # Prometheus operator kinds that exist: "ServiceMonitor", "PrometheusRule".
    monitoring_kinds: frozenset[str] = field(default_factory=frozenset)


def labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "xrouter",
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: MANAGER,
        INSTANCE_LABEL: name,
    }


def selector(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "xrouter", COMPONENT_LABEL: "router", INSTANCE_LABEL: name}


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector(name).items()))


def endpoint(xr: XRouter) -> str:
    port = xr.spec.service.port
    suffix = "" if port == 80 else f":{port}"
    return f"http://{xr.metadata.name}.{xr.metadata.namespace}.svc{suffix}"


def admin_secret_name(name: str) -> str:
    return f"{name}-admin-key"


def _env_name(prefix: str, name: str) -> str:
    return f"XR_{prefix}_{name.upper().replace('-', '_')}"


def _meta(xr: XRouter, name: str, component: str, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": xr.metadata.namespace,
        "labels": labels(xr.metadata.name, component),
    }
    if xr.metadata.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": xr.metadata.name,
                "uid": xr.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    meta.update(extra)
    return meta


def _secret_env(env: str, ref_name: str, ref_key: str) -> dict[str, Any]:
    return {"name": env, "valueFrom": {"secretKeyRef": {"name": ref_name, "key": ref_key}}}


# ---------------------------------------------------------------------------- router config


def router_config(xr: XRouter) -> tuple[rc.RouterConfig, list[dict[str, Any]]]:
    """The router's config, validated by the router's own model, and the env vars
    that carry the secrets it names."""
    spec = xr.spec
    env: list[dict[str, Any]] = [
        _secret_env("XR_ADMIN_KEY", admin_secret_name(xr.metadata.name), ADMIN_KEY_FIELD)
    ]
    providers = []
    for p in spec.providers:
        api_key = None
        if p.api_key_secret_ref is not None:
            var = _env_name("PROVIDER", p.name) + "_API_KEY"
            env.append(_secret_env(var, p.api_key_secret_ref.name, p.api_key_secret_ref.key))
            api_key = rc.SecretSource(env=var)
        providers.append(
            rc.Provider(
                name=p.name,
                type=rc.ProviderType(p.type.value),
                base_url=p.base_url,
                api_key=api_key,
                api_version=p.api_version,
                timeouts=rc.Timeouts(
                    connect=p.timeouts.connect, first_byte=p.timeouts.first_byte, total=p.timeouts.total
                ),
                max_retries=p.max_retries,
            )
        )
    keys = []
    for k in spec.keys:
        var = _env_name("KEY", k.name)
        env.append(_secret_env(var, k.secret_key_ref.name, k.secret_key_ref.key))
        keys.append(
            rc.Key(
                name=k.name,
                secret=rc.SecretSource(env=var),
                limits=rc.Limits.model_validate(k.limits.model_dump()) if k.limits else None,
            )
        )
    redis = rc.RedisConfig()
    if spec.redis is not None:
        env.append(_secret_env("XR_REDIS_URL", spec.redis.url_secret_ref.name, spec.redis.url_secret_ref.key))
        redis = rc.RedisConfig(url=rc.SecretSource(env="XR_REDIS_URL"), fail_mode=spec.redis.fail_mode)
    database = rc.DatabaseConfig(spill_dir=SPILL_DIR)
    if spec.database is not None:
        ref = spec.database.url_secret_ref
        env.append(_secret_env("XR_DATABASE_URL", ref.name, ref.key))
        database = rc.DatabaseConfig(url=rc.SecretSource(env="XR_DATABASE_URL"), spill_dir=SPILL_DIR)
    try:
        config = rc.RouterConfig(
            providers=providers,
            models=[
                rc.Route(
                    name=m.name,
                    strategy=rc.Strategy(m.strategy.value),
                    hash_key=m.hash_key,
                    targets=[
                        rc.Target(provider=t.provider, model=t.model, weight=t.weight) for t in m.targets
                    ],
                    fallbacks=list(m.fallbacks),
                )
                for m in spec.models
            ],
            keys=keys,
            default_limits=rc.Limits.model_validate(spec.default_limits.model_dump()),
            prices=dict(spec.prices),
            admin_key=rc.SecretSource(env="XR_ADMIN_KEY"),
            redis=redis,
            database=database,
        )
    except ValidationError as e:
        raise RenderError(f"spec: the router rejects the config: {format_validation_error(e)}") from None
    return config, env


def format_validation_error(e: ValidationError, prefix: str = "") -> str:
    """One line per error, each naming the field (camelCase path)."""
    out = []
    for err in e.errors(include_url=False, include_input=False):
        loc = prefix
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
    return "; ".join(out)


# ---------------------------------------------------------------------------- children


def _service_account(xr: XRouter) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(xr, xr.metadata.name, "router"),
        "automountServiceAccountToken": False,
    }


def _admin_secret(xr: XRouter, inputs: RenderInputs) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(
            xr,
            admin_secret_name(xr.metadata.name),
            "router",
            annotations={ROTATION_ANNOTATION: inputs.admin_key_rotation},
        ),
        "type": "Opaque",
        "data": {ADMIN_KEY_FIELD: base64.b64encode(inputs.admin_key.encode()).decode()},
    }


def _config_map(xr: XRouter, config_json: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(xr, f"{xr.metadata.name}-config", "router"),
        "data": {"config.json": config_json},
    }


def _default_spread(name: str) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(name)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _deployment(xr: XRouter, env: list[dict[str, Any]], checksum: str) -> Manifest:
    spec = xr.spec
    name = xr.metadata.name
    pods = spec.pods
    user_env = [e.model_dump(by_alias=True, exclude_none=True) for e in pods.env]
    container: dict[str, Any] = {
        "name": "router",
        "image": spec.image.ref,
        "imagePullPolicy": spec.image.pull_policy.value,
        "command": [
            "xrouter-router",
            "--config",
            f"{CONFIG_DIR}/config.json",
            "--host",
            "0.0.0.0",
            "--port",
            str(HTTP_PORT),
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": env + user_env,
        "resources": {
            k: v
            for k, v in (("requests", dict(pods.resources.requests)), ("limits", dict(pods.resources.limits)))
            if v
        },
        "livenessProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "startupProbe": {
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 30,
        },
        "securityContext": _restricted_container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "spill", "mountPath": SPILL_DIR},
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 40,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": f"{name}-config"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "spill", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    spread = pods.topology_spread_constraints
    spread_list = _default_spread(name) if spread is None else [dict(s) for s in spread]
    if spread_list:
        pod_spec["topologySpreadConstraints"] = spread_list
    if spec.image.pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in spec.image.pull_secrets]
    if pods.node_selector:
        pod_spec["nodeSelector"] = dict(pods.node_selector)
    if pods.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in pods.tolerations]
    if pods.affinity:
        pod_spec["affinity"] = dict(pods.affinity)
    if pods.priority_class_name:
        pod_spec["priorityClassName"] = pods.priority_class_name
    deploy_spec: dict[str, Any] = {
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxSurge": spec.rollout.max_surge,
                "maxUnavailable": spec.rollout.max_unavailable,
            },
        },
        "template": {
            "metadata": {
                "labels": {**pods.labels, **labels(name, "router")},
                "annotations": {**pods.annotations, CHECKSUM_ANNOTATION: checksum},
            },
            "spec": pod_spec,
        },
    }
    if not spec.autoscaling.enabled:
        deploy_spec = {"replicas": spec.replicas, **deploy_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(xr, name, "router"),
        "spec": deploy_spec,
    }


def _service(xr: XRouter) -> Manifest:
    meta = _meta(xr, xr.metadata.name, "router")
    if xr.spec.service.annotations:
        meta["annotations"] = dict(xr.spec.service.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": xr.spec.service.type,
            "selector": selector(xr.metadata.name),
            "ports": [
                {"name": "http", "port": xr.spec.service.port, "targetPort": "http", "protocol": "TCP"},
                {"name": "metrics", "port": METRICS_SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
            ]
            if xr.spec.service.port != METRICS_SERVICE_PORT
            else [{"name": "http", "port": xr.spec.service.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _hpa(xr: XRouter) -> Manifest:
    a = xr.spec.autoscaling
    metrics: list[dict[str, Any]] = []
    for resource, target in (
        ("cpu", a.target_cpu_utilization_percentage),
        ("memory", a.target_memory_utilization_percentage),
    ):
        if target is not None:
            metrics.append(
                {
                    "type": "Resource",
                    "resource": {
                        "name": resource,
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            )
    if a.target_requests_per_second is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "xrouter_requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": str(a.target_requests_per_second)},
                },
            }
        )

    def rules(r: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if r.stabilization_window_seconds is not None:
            out["stabilizationWindowSeconds"] = r.stabilization_window_seconds
        if r.select_policy is not None:
            out["selectPolicy"] = r.select_policy
        if r.policies:
            out["policies"] = [p.model_dump(by_alias=True) for p in r.policies]
        return out

    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": xr.metadata.name},
        "minReplicas": a.min_replicas,
        "maxReplicas": a.max_replicas,
    }
    if metrics:
        spec["metrics"] = metrics
    spec["behavior"] = {"scaleUp": rules(a.behavior.scale_up), "scaleDown": rules(a.behavior.scale_down)}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(xr, xr.metadata.name, "router"),
        "spec": spec,
    }


def _peers(peers: list[Any]) -> list[dict[str, Any]]:
    return [p.model_dump(by_alias=True, exclude_none=True) for p in peers]


def _provider_ports(spec: XRouterSpec) -> list[int]:
    ports = set()
    for p in spec.providers:
        if p.base_url:
            u = urlsplit(p.base_url)
            ports.add(u.port or (80 if u.scheme == "http" else 443))
    return sorted(ports)


def _network_policy(xr: XRouter) -> Manifest:
    np = xr.spec.network_policy
    name = xr.metadata.name
    ingress: list[dict[str, Any]] = [
        {
            "from": _peers(np.ingress_from) or [{"podSelector": {}}],
            "ports": [{"port": HTTP_PORT, "protocol": "TCP"}],
        }
    ]
    if np.allow_metrics_from:
        ingress.append(
            {"from": _peers(np.allow_metrics_from), "ports": [{"port": HTTP_PORT, "protocol": "TCP"}]}
        )
    egress: list[dict[str, Any]] = [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
    ]
    if xr.spec.redis is not None:
        egress.append({"ports": [{"port": xr.spec.redis.port, "protocol": "TCP"}]})
    if xr.spec.database is not None:
        egress.append({"ports": [{"port": xr.spec.database.port, "protocol": "TCP"}]})
    ports = _provider_ports(xr.spec)
    if ports:
        egress.append(
            {
                "to": [{"ipBlock": {"cidr": c}} for c in np.egress.provider_cidrs]
                + [{"namespaceSelector": {}}],
                "ports": [{"port": p, "protocol": "TCP"} for p in ports],
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(xr, name, "router"),
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def _pdb(xr: XRouter) -> Manifest:
    p = xr.spec.pod_disruption_budget
    spec: dict[str, Any] = {"selector": {"matchLabels": selector(xr.metadata.name)}}
    if p.min_available is not None:
        spec["minAvailable"] = p.min_available
    else:
        spec["maxUnavailable"] = p.max_unavailable if p.max_unavailable is not None else 1
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(xr, xr.metadata.name, "router"),
        "spec": spec,
    }


BACKUP_SCRIPT = """\
set -euo pipefail
f="/backup/xrouter-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
pg_dump --no-owner --no-privileges --dbname="$DATABASE_URL" | gzip > "$f.partial"
mv "$f.partial" "$f"
echo "wrote $f"
ls -1t /backup/xrouter-*.sql.gz | tail -n +$((RETENTION + 1)) | while read -r old; do
  rm -f -- "$old"; echo "removed $old"
done
"""


def backup_pvc_name(xr: XRouter) -> str:
    b = xr.spec.backup
    if b is not None and b.storage.existing_claim:
        return b.storage.existing_claim
    return f"{xr.metadata.name}-backup"


def _backup_pvc(xr: XRouter) -> Manifest:
    assert xr.spec.backup is not None
    s = xr.spec.backup.storage
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": s.size}}}
    if s.storage_class_name:
        spec["storageClassName"] = s.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(xr, backup_pvc_name(xr), "backup"),
        "spec": spec,
    }


def _backup_cronjob(xr: XRouter) -> Manifest:
    b = xr.spec.backup
    db = xr.spec.database
    assert b is not None and db is not None
    name = xr.metadata.name
    pod_labels = labels(name, "backup")
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _meta(xr, f"{name}-backup", "backup"),
        "spec": {
            "schedule": b.schedule,
            "suspend": b.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "backoffLimit": 2,
                    "activeDeadlineSeconds": 3600,
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": name,
                            "automountServiceAccountToken": False,
                            "securityContext": {
                                "runAsNonRoot": True,
                                "runAsUser": 70,
                                "runAsGroup": 70,
                                "fsGroup": 70,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "containers": [
                                {
                                    "name": "pg-dump",
                                    "image": b.image,
                                    "command": ["/bin/sh", "-c", BACKUP_SCRIPT],
                                    "env": [
                                        _secret_env(
                                            "DATABASE_URL", db.url_secret_ref.name, db.url_secret_ref.key
                                        ),
                                        {"name": "RETENTION", "value": str(b.retention)},
                                    ],
                                    "securityContext": _restricted_container_security(),
                                    "volumeMounts": [
                                        {"name": "backup", "mountPath": "/backup"},
                                        {"name": "tmp", "mountPath": "/tmp"},
                                    ],
                                }
                            ],
                            "volumes": [
                                {
                                    "name": "backup",
                                    "persistentVolumeClaim": {"claimName": backup_pvc_name(xr)},
                                },
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                            ],
                        },
                    },
                },
            },
        },
    }


def _service_monitor(xr: XRouter) -> Manifest:
    sm = xr.spec.monitoring.service_monitor
    meta = _meta(xr, xr.metadata.name, "router")
    meta["labels"] = {**sm.labels, **meta["labels"]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": labels(xr.metadata.name, "router")},
            "namespaceSelector": {"matchNames": [xr.metadata.namespace]},
            "endpoints": [{"port": "metrics", "path": "/metrics", "interval": sm.interval}],
        },
    }


def _prometheus_rule(xr: XRouter) -> Manifest:
    pr = xr.spec.monitoring.prometheus_rule
    meta = _meta(xr, xr.metadata.name, "router")
    meta["labels"] = {**pr.labels, **meta["labels"]}
    ns, name = xr.metadata.namespace, xr.metadata.name
    sel = f'namespace="{ns}", service="{name}"'
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": meta,
        "spec": {
            "groups": [
                {
                    "name": f"xrouter-{name}",
                    "rules": [
                        {
                            "alert": "XRouterDown",
                            "expr": f"sum(up{{{sel}}}) == 0 or absent(up{{{sel}}})",
                            "for": "5m",
                            "labels": {"severity": "critical"},
                            "annotations": {
                                "summary": f"No router pod of XRouter {ns}/{name} is scraped as up."
                            },
                        },
                        {
                            "alert": "XRouterPodDown",
                            "expr": f"min(up{{{sel}}}) == 0",
                            "for": "10m",
                            "labels": {"severity": "warning"},
                            "annotations": {"summary": f"A router pod of XRouter {ns}/{name} is down."},
                        },
                    ],
                }
            ]
        },
    }


def render(xr: XRouter, inputs: RenderInputs | None = None) -> list[Manifest]:
    """Every object the XRouter asks for, in apply order. Raises RenderError."""
    inputs = inputs or RenderInputs()
    config, env = router_config(xr)
    config_json = rc.dump_config(config)
    checksum = hashlib.sha256(
        json.dumps({"config": config_json, "adminKeyRotation": inputs.admin_key_rotation}).encode()
    ).hexdigest()
    spec = xr.spec
    out = [
        _service_account(xr),
        _admin_secret(xr, inputs),
        _config_map(xr, config_json),
        _service(xr),
        _deployment(xr, env, checksum),
    ]
    if spec.autoscaling.enabled:
        out.append(_hpa(xr))
    if spec.pod_disruption_budget.enabled:
        out.append(_pdb(xr))
    if spec.network_policy.enabled:
        out.append(_network_policy(xr))
    if spec.backup is not None:
        if spec.backup.storage.size is not None:
            out.append(_backup_pvc(xr))
        out.append(_backup_cronjob(xr))
    if spec.monitoring.service_monitor.enabled and "ServiceMonitor" in inputs.monitoring_kinds:
        out.append(_service_monitor(xr))
    if spec.monitoring.prometheus_rule.enabled and "PrometheusRule" in inputs.monitoring_kinds:
        out.append(_prometheus_rule(xr))
    return out


def parse(body: dict[str, Any]) -> XRouter:
    """Parse an XRouter object (a dict) through the models. Raises RenderError naming the field."""
    try:
        return XRouter.model_validate(body)
    except ValidationError as e:
        raise RenderError(format_validation_error(e)) from None
