"""Builders of the router workload: ServiceAccount, admin-key Secret, ConfigMap,
Service, Deployment and HorizontalPodAutoscaler. Pure: no API calls."""

from __future__ import annotations

import base64
from typing import Any

from .models import Resources, XRouter
from .models_workload import Pods
from .naming import (
    ADMIN_KEY_FIELD,
    CHECKSUM_ANNOTATION,
    CONFIG_DIR,
    HTTP_PORT,
    ROTATION_ANNOTATION,
    RUN_AS,
    SECRETS_DIR,
    SECRETS_STORE_DIR,
    SPILL_DIR,
    admin_secret_name,
    config_map_name,
    labels,
    meta,
    metrics_service_port,
    selector,
)
from .routerconfig import SecretFile, projected_volume

Manifest = dict[str, Any]
# How long a terminating router pod keeps serving before SIGTERM (its preStop sleep):
# a few seconds covers endpoint propagation to kube-proxy on every node.
PRESTOP_SECONDS = 5


def restricted_pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(r: Resources) -> dict[str, Any]:
    return {k: v for k, v in (("requests", dict(r.requests)), ("limits", dict(r.limits))) if v}


def restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def service_account(xr: XRouter) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(xr, xr.metadata.name, "router"),
        "automountServiceAccountToken": False,
    }


def admin_secret(xr: XRouter, admin_key: str, rotation: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta(
            xr,
            admin_secret_name(xr.metadata.name),
            "router",
            annotations={ROTATION_ANNOTATION: rotation},
        ),
        "type": "Opaque",
        "data": {ADMIN_KEY_FIELD: base64.b64encode(admin_key.encode()).decode()},
    }


def config_map(xr: XRouter, config_json: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(xr, config_map_name(xr.metadata.name), "router"),
        "data": {"config.json": config_json},
    }


def default_spread(name: str) -> list[dict[str, Any]]:
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(name)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def telemetry_env(xr: XRouter) -> list[dict[str, Any]]:
    """The standard OTEL_* variables for spec.telemetry (none without it: tracing off).
    parentbased_traceidratio keeps a caller's sampling decision and samples new traces
    at the ratio, as the SDK's own default (parentbased_always_on) does at 1."""
    t = xr.spec.telemetry
    if t is None:
        return []
    env = [
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": t.endpoint},
        {"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"},
        {"name": "OTEL_TRACES_SAMPLER_ARG", "value": repr(float(t.sampling_ratio))},
    ]
    if t.service_name is not None:
        env.append({"name": "OTEL_SERVICE_NAME", "value": t.service_name})
    return env


def deployment(xr: XRouter, secret_files: list[SecretFile], checksum: str) -> Manifest:
    spec = xr.spec
    name = xr.metadata.name
    pods = spec.pods
    user_env = telemetry_env(xr) + [e.model_dump(by_alias=True, exclude_none=True) for e in pods.env]
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
        **({"env": user_env} if user_env else {}),
        "resources": resources(pods.resources),
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
        # A deleted pod keeps serving for PRESTOP_SECONDS before it gets SIGTERM: until
        # every kube-proxy (and ingress) has dropped its endpoint, new connections still
        # reach it, and a router that had already closed its listener would refuse them.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "spill", "mountPath": SPILL_DIR},
        ],
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRESTOP_SECONDS + 40,
        "securityContext": restricted_pod_security(),
        "containers": [container],
        "volumes": [
            {"name": "config", "configMap": {"name": config_map_name(name)}},
            projected_volume("secrets", secret_files),
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            {"name": "spill", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if spec.secret_provider_class is not None:
        # The Secrets Store CSI driver fetches the objects (from Vault, ...) as the pod starts
        # and, with its rotation on, rewrites them in place: the router re-reads them as it
        # does the projected Secret files.
        mount = {"name": "secrets-store", "mountPath": SECRETS_STORE_DIR, "readOnly": True}
        container["volumeMounts"].append(mount)
        pod_spec["volumes"].append(
            {
                "name": "secrets-store",
                "csi": {
                    "driver": "secrets-store.csi.k8s.io",
                    "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": spec.secret_provider_class.name},
                },
            }
        )
    spread = pods.topology_spread_constraints
    spread_list = default_spread(name) if spread is None else [dict(s) for s in spread]
    if spread_list:
        pod_spec["topologySpreadConstraints"] = spread_list
    if spec.image.pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in spec.image.pull_secrets]
    pod_spec.update(node_placement(pods))
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
        "metadata": meta(xr, name, "router"),
        "spec": deploy_spec,
    }


def service(xr: XRouter) -> Manifest:
    md = meta(xr, xr.metadata.name, "router")
    if xr.spec.service.annotations:
        md["annotations"] = dict(xr.spec.service.annotations)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": md,
        "spec": {
            "type": xr.spec.service.type,
            "selector": selector(xr.metadata.name),
            # Always a port named metrics: the ServiceMonitor scrapes it by name.
            "ports": [
                {"name": "http", "port": xr.spec.service.port, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "metrics",
                    "port": metrics_service_port(xr.spec.service.port),
                    "targetPort": "http",
                    "protocol": "TCP",
                },
            ],
        },
    }


def hpa(xr: XRouter) -> Manifest:
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
        "metadata": meta(xr, xr.metadata.name, "router"),
        "spec": spec,
    }


def node_placement(pods: Pods) -> dict[str, Any]:
    """Where ``spec.pods`` puts pods: nodeSelector and tolerations. The backup Job shares it, so
    that it can run wherever the routers are allowed to (tainted or dedicated nodes included)."""
    out: dict[str, Any] = {}
    if pods.node_selector:
        out["nodeSelector"] = dict(pods.node_selector)
    if pods.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in pods.tolerations]
    return out
