"""Names, labels and annotations the operator puts on its children, shared by the
builders and by reconcile (which finds its children by them)."""

from __future__ import annotations

from typing import Any

from .models import API_VERSION, KIND, XRouter

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
# The Service's metrics port when spec.service.port takes 8080 (two ports cannot share a number).
METRICS_SERVICE_PORT_ALT = 9090
CONFIG_DIR = "/etc/xrouter"
SPILL_DIR = "/var/lib/xrouter/spill"
# Secrets as files (a projected volume); not under CONFIG_DIR, whose ConfigMap volume is read-only.
SECRETS_DIR = "/var/run/xrouter/secrets"
# spec.secretProviderClass's objects (the Secrets Store CSI driver's volume), one file each.
SECRETS_STORE_DIR = "/var/run/xrouter/secrets-store"
RUN_AS = 10001


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


def children_selector(name: str) -> str:
    """Every child of the XRouter ``name`` (what prune lists)."""
    return f"{MANAGED_BY_LABEL}={MANAGER},{INSTANCE_LABEL}={name}"


def metrics_service_port(http_port: int) -> int:
    return METRICS_SERVICE_PORT_ALT if http_port == METRICS_SERVICE_PORT else METRICS_SERVICE_PORT


def endpoint(xr: XRouter) -> str:
    port = xr.spec.service.port
    suffix = "" if port == 80 else f":{port}"
    return f"http://{xr.metadata.name}.{xr.metadata.namespace}.svc{suffix}"


def admin_secret_name(name: str) -> str:
    return f"{name}-admin-key"


def config_map_name(name: str) -> str:
    return f"{name}-config"


def backup_cronjob_name(name: str) -> str:
    return f"{name}-backup"


def backup_export_name(name: str) -> str:
    return f"{name}-backup-export"


def backup_pvc_name(xr: XRouter) -> str:
    b = xr.spec.backup
    if b is not None and b.storage.existing_claim:
        return b.storage.existing_claim
    return f"{xr.metadata.name}-backup"


def meta(xr: XRouter, name: str, component: str, *, owned: bool = True, **extra: Any) -> dict[str, Any]:
    """A child's metadata: our labels and (unless ``owned`` is False) a controller
    ownerReference to the XRouter."""
    out: dict[str, Any] = {
        "name": name,
        "namespace": xr.metadata.namespace,
        "labels": labels(xr.metadata.name, component),
    }
    if xr.metadata.uid and owned:
        out["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": xr.metadata.name,
                "uid": xr.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    out.update(extra)
    return out
