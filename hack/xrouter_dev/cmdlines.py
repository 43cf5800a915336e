"""Pure builders for the control plane: where its files live, its ports, its command lines, the kwok
node manifests. Nothing here starts a process (tests/dev/test_cluster_args.py checks them)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrouter_dev import certs
from xrouter_dev.tools import free_port

ZONES = ("zone-a", "zone-b", "zone-c")
ADMIN_USER = "xrouter-admin"
# Service addresses. With only kwok nodes no traffic goes there; with the real node, its kube-proxy
# routes them to pods on the launcher's bridge (xrouter_dev.nodenet).
SERVICE_CIDR = "10.96.0.0/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None"},
    ],
}


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @classmethod
    def pick(cls) -> Ports:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        a, b, c = sorted(ports)
        return cls(etcd_client=a, etcd_peer=b, apiserver=c)


@dataclass(frozen=True)
class Layout:
    """Where every file of one cluster lives, under its data directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def audit_policy(self) -> Path:
        return self.root / "audit-policy.yaml"

    def component_kubeconfig(self, component: str) -> Path:
        return self.pki / f"{component}.kubeconfig"

    def pem(self, name: str) -> Path:
        return self.pki / name


def kubeconfig_dict(server: str, ca_pem: bytes, client: certs.KeyPair, user: str) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates inline) for one client certificate."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "xrouter-local",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(client.cert_pem),
                    "client-key-data": b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": "xrouter-local", "context": {"cluster": "xrouter-local", "user": user}}],
        "current-context": "xrouter-local",
    }


def node_manifest(index: int, zone: str) -> dict[str, Any]:
    """A fake node that kwok manages (annotation kwok.x-k8s.io/node=fake). Not tainted, so ordinary
    pods schedule onto it without tolerations."""
    name = f"kwok-node-{index}"
    resources = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", KWOK_NODE_ANNOTATION: "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
                "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "local",
            },
        },
        "spec": {},
        "status": {
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {
                "architecture": "amd64",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "operatingSystem": "linux",
                "bootID": "",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "machineID": "",
                "osImage": "",
                "systemUUID": "",
            },
            "phase": "Running",
        },
    }


def etcd_args(bin_path: Path, layout: Layout, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bin_path),
        "--name=xrouter",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=xrouter={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",  # throwaway data: no fsync keeps a 2-core machine fast
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]


def apiserver_args(bin_path: Path, layout: Layout, ports: Ports) -> list[str]:
    pki = layout.pki
    return [
        str(bin_path),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--api-audiences=https://kubernetes.default.svc.cluster.local",
        "--authorization-mode=Node,RBAC",
        # The real node's kubelet may only write its own Node and its pods' status.
        "--enable-admission-plugins=NodeRestriction",
        # The API server's identity towards kubelets (logs, exec, port-forward): the kubelet
        # authenticates it against the cluster CA and authorizes it via the webhook.
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--endpoint-reconciler-type=none",
        "--profiling=false",
        f"--audit-policy-file={layout.audit_policy}",
        f"--audit-log-path={layout.audit_log}",
        "--audit-log-format=json",
        "--audit-log-mode=blocking",
        "--audit-log-maxsize=0",
        f"--cert-dir={pki}",
        # Aggregated APIs (metrics-server's metrics.k8s.io, which the HPA reads): the API server proxies
        # to them as front-proxy-client and dials the Service's endpoint directly.
        f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
        "--enable-aggregator-routing=true",
        "--v=0",
    ]


# Controllers that need a cloud provider or a network we don't have.
DISABLED_CONTROLLERS = ("cloud-node-lifecycle-controller", "service-lb-controller", "node-route-controller")


def controller_manager_args(bin_path: Path, layout: Layout) -> list[str]:
    pki = layout.pki
    kubeconfig = layout.component_kubeconfig("kube-controller-manager")
    return [
        str(bin_path),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--leader-elect=false",
        "--controllers=*," + ",".join(f"-{c}" for c in DISABLED_CONTROLLERS),
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}",
        f"--cluster-signing-key-file={pki / 'ca.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--concurrent-gc-syncs=5",
        "--v=0",
    ]


def scheduler_args(bin_path: Path, layout: Layout) -> list[str]:
    kubeconfig = layout.component_kubeconfig("kube-scheduler")
    return [
        str(bin_path),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--leader-elect=false",
        "--v=0",
    ]


def kwok_args(bin_path: Path, layout: Layout) -> list[str]:
    # With no --config kwok uses its built-in "fast" stages: nodes become Ready (and keep a lease),
    # pods become Running/Ready, pods owned by a Job succeed, deleted pods go away.
    return [
        str(bin_path),
        f"--kubeconfig={layout.component_kubeconfig('kwok')}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        "--node-ip=127.0.0.1",
        "--cidr=10.244.0.1/16",
        "--node-lease-duration-seconds=40",
        "--v=WARN",
    ]
