"""The API objects the real node's host processes need: Services with hand-written Endpoints for
CoreDNS and metrics-server, the metrics.k8s.io APIService, and the kubernetes Service's endpoint (the
launcher's relay to the API server). Pure (tests/dev/test_node_config.py checks them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xrouter_dev.nodeconfig import (
    API_RELAY_PORT,
    DNS_SERVICE_IP,
    METRICS_SERVER_PORT,
    NODE_IP,
    NODE_NAME,
    STORAGE_CLASS,
)

# Released PVs (Retain) are not reused: enough for a test session's claims.
PV_COUNT = 12


def _selectorless_service(
    name: str, namespace: str, ip: str, ports: list[dict[str, Any]], target: str, labels: dict[str, str]
) -> list[dict[str, Any]]:
    """A Service with no selector and its hand-written Endpoints: how pods reach a host process."""
    meta = {"name": name, "namespace": namespace, "labels": labels}
    spec: dict[str, Any] = {"ports": ports}
    if ip:
        spec["clusterIP"] = ip
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec},
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": meta,
            "subsets": [
                {
                    "addresses": [{"ip": target}],
                    "ports": [
                        {"name": p["name"], "port": p["targetPort"], "protocol": p.get("protocol", "TCP")}
                        for p in ports
                    ],
                }
            ],
        },
    ]


def addon_manifests() -> list[dict[str, Any]]:
    """kube-dns and metrics-server Services (pointing at the host processes), the metrics.k8s.io
    APIService, and the kubernetes Service's endpoint (the launcher's relay to the API server)."""
    dns_ports = [
        {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
    ]
    objs = _selectorless_service(
        "kube-dns", "kube-system", DNS_SERVICE_IP, dns_ports, NODE_IP, {"k8s-app": "kube-dns"}
    )
    objs += _selectorless_service(
        "metrics-server",
        "kube-system",
        "",
        [{"name": "https", "port": 443, "targetPort": METRICS_SERVER_PORT, "protocol": "TCP"}],
        NODE_IP,
        {"k8s-app": "metrics-server"},
    )
    objs.append(
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {
                "group": "metrics.k8s.io",
                "version": "v1beta1",
                "service": {"name": "metrics-server", "namespace": "kube-system", "port": 443},
                "insecureSkipTLSVerify": True,  # metrics-server's serving certificate is self-signed
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
    )
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "subsets": [
                {
                    "addresses": [{"ip": NODE_IP}],
                    "ports": [{"name": "https", "port": API_RELAY_PORT, "protocol": "TCP"}],
                }
            ],
        }
    )
    return objs


def local_volumes(root: Path, count: int = PV_COUNT, size: str = "5Gi") -> list[dict[str, Any]]:
    """A StorageClass with no provisioner and `count` hostPath PVs on the real node (directories under
    root, removed with the node), so PVCs of class STORAGE_CLASS bind, e.g. a backup claim."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "kubernetes.io/no-provisioner",
            # Bind once a pod is scheduled: the PV's node affinity then matches that pod's node.
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        }
    ]
    for i in range(count):
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{STORAGE_CLASS}-{i}"},
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": str(root / f"pv-{i}"), "type": "DirectoryOrCreate"},
                    "nodeAffinity": {
                        "required": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": [NODE_NAME],
                                        }
                                    ]
                                }
                            ]
                        }
                    },
                },
            }
        )
    return objs
