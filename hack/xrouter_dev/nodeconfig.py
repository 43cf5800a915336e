"""Pure builders for the real node (`xrouter-node`): its addresses, files and command lines.

The node runs on this host: containerd (Debian's, with its own root, state and socket under the node's
directory), the kubelet, kube-proxy (iptables), CoreDNS, kube-router (firewall only: NetworkPolicy) and
metrics-server. Pods get their own network namespaces on a bridge the launcher creates. Every address
below is in a range the launcher owns; nothing listens beyond loopback and the bridge's address.
Nothing here starts a process (tests/dev/test_node_config.py checks these).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrouter_dev.cmdlines import SERVICE_CIDR, Layout

NODE_NAME = "xrouter-node"
REAL_NODE_LABEL = "xrouter.io/real-node"
# Real-node workloads opt in with a toleration and a nodeSelector; everything else (the kwok scale
# tests, other suites' pause pods that could never pull) stays on the fake nodes.
REAL_NODE_TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
BRIDGE = "xrbr0"
POD_CIDR = "10.234.0.0/24"  # kwok's fake pod IPs are 10.244.0.0/16; `ip route` shows only 192.0.2.0/24
NODE_IP = "10.234.0.1"  # the bridge's address: the pods' gateway and the node's InternalIP
DNS_SERVICE_IP = "10.96.0.10"
API_SERVICE_IP = "10.96.0.1"
API_RELAY_PORT = 6443  # on NODE_IP: pods reach the API server (bound to 127.0.0.1) through the launcher
KUBELET_PORT = 10250
METRICS_SERVER_PORT = 4443
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "localhost/xrouter-pause:3.10"
CGROUP_ROOT = "/xrouter-node"  # the node's pods live under this cgroup in every hierarchy
NODE_TOOLS = ("kubelet", "kube-proxy", "coredns", "kube-router", "metrics-server")
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUN_DIR = Path("/run/xrouter-node")  # containerd's sockets; removed on teardown
STORAGE_CLASS = "xrouter-local"  # hostPath PVs on the real node (nodeaddons.local_volumes)
NODE_ROOT = Path("/var/lib/xrouter-node")  # the node's state (containerd, kubelet); removed on teardown


@dataclass(frozen=True)
class NodeLayout:
    """Where the real node's files live (under the cluster's data directory)."""

    root: Path

    @classmethod
    def default(cls) -> NodeLayout:
        # Not under the cluster's (often deep, temporary) directory: the kubelet and containerd put
        # unix sockets in theirs, and a socket path has at most 104 bytes. One real node per machine.
        return cls(NODE_ROOT)

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_config(self) -> Path:
        return self.containerd / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        # Unix socket paths are limited to 104 bytes (ttrpc adds ".ttrpc"): a short fixed path, fine
        # since there is one real node per machine (nodehost.NodeLock).
        return RUN_DIR / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy-config.yaml"

    @property
    def corefile(self) -> Path:
        return self.root / "Corefile"

    @property
    def resolv_conf(self) -> Path:
        return self.root / "resolv.conf"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def metrics_certs(self) -> Path:
        return self.root / "metrics-server-certs"

    @property
    def record(self) -> Path:
        """What the launcher changed on the host (bridge, sysctls, cgroups, netns): teardown reads it."""
        return self.root / "host-changes.json"

    def kubeconfig(self, component: str) -> Path:
        return self.root / f"{component}.kubeconfig"


# Each node component's client identity (CN, O). The kubelet's is the Node authorizer's form;
# kube-proxy's user is bound to system:node-proxier by the default RBAC. The add-ons read (and
# kube-router watches) cluster-wide objects; here they act as cluster admins, on a throwaway cluster.
NODE_IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
    "kube-proxy": ("system:kube-proxy", ()),
    "coredns": ("xrouter-coredns", ("system:masters",)),
    "kube-router": ("xrouter-kube-router", ("system:masters",)),
    "metrics-server": ("xrouter-metrics-server", ("system:masters",)),
}


def containerd_config(node: NodeLayout) -> str:
    """containerd 1.6 (config version 2) with everything under the node's directory."""
    c = node.containerd
    disabled = [
        "io.containerd.internal.v1.opt",  # would write /opt/containerd
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.tracing.processor.v1.otlp",
    ]
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""# Generated by xrouter_dev.nodeconfig; the launcher's own containerd, not the system one.
version = 2
root = "{c / "root"}"
state = "{c / "state"}"
disabled_plugins = {json.dumps(disabled)}

[grpc]
  address = "{node.containerd_socket}"

[ttrpc]
  address = "{node.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: without this every sandbox fails writing /proc/self/oom_score_adj.
  restrict_oom_score_adj = true
  # exec / port-forward streams: loopback only, a free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{node.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_conflist(node: NodeLayout) -> dict[str, Any]:
    """One bridge network: the launcher's bridge, host-local addresses from POD_CIDR, no NAT."""
    return {
        "cniVersion": "1.0.0",
        "name": "xrouter",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,  # nothing outside the host is ever reached
                "hairpinMode": True,  # a pod reaching itself through its Service
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(node.cni_data),
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: NodeLayout, cluster: Layout, healthz_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(cluster.pem("ca.crt"))},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{node.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": CGROUP_ROOT,
        "failCgroupV1": False,  # this VM has cgroup v1
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(node.resolv_conf),
        "registerWithTaints": [REAL_NODE_TAINT],
        "podCIDR": POD_CIDR,
        "maxPods": 60,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        # A shared VM disk: evict only when truly full, never because other work filled it.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        # The kubelet would otherwise set host sysctls (vm.overcommit_memory, kernel.panic, ...).
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True,
        "staticPodPath": "",
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "tlsCertFile": str(node.root / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(node.root / "kubelet-serving.key"),
        "shutdownGracePeriod": "0s",
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "60s",
        "logging": {"format": "text"},
    }


def kubelet_args(bin_path: Path, node: NodeLayout) -> list[str]:
    return [
        str(bin_path),
        f"--config={node.kubelet_config}",
        f"--kubeconfig={node.kubeconfig('kubelet')}",
        f"--root-dir={node.kubelet_dir}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--node-labels={REAL_NODE_LABEL}=true",
        "--v=1",
    ]


def kube_proxy_config(node: NodeLayout, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(node.kubeconfig("kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts only on the node's bridge address, never on eth0.
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # Leave the host's conntrack table sizes alone.
        "conntrack": {"maxPerCore": 0, "min": 0},
        "iptables": {"masqueradeAll": False, "syncPeriod": "5s", "minSyncPeriod": "0s"},
    }


def kube_proxy_args(bin_path: Path, node: NodeLayout) -> list[str]:
    return [str(bin_path), f"--config={node.kube_proxy_config}", "--v=1"]


def corefile(node: NodeLayout) -> str:
    """Cluster names only: nothing outside the cluster is ever resolved (no forward plugin)."""
    return f""". {{
    bind {NODE_IP}
    errors
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {node.kubeconfig("coredns")}
        pods insecure
    }}
    cache 5
    loadbalance
}}
"""


def coredns_args(bin_path: Path, node: NodeLayout) -> list[str]:
    return [str(bin_path), "-conf", str(node.corefile), "-dns.port", "53"]


def kube_router_args(bin_path: Path, node: NodeLayout) -> list[str]:
    """Only the NetworkPolicy firewall; no routing, no service proxy (kube-proxy does that)."""
    return [
        str(bin_path),
        f"--kubeconfig={node.kubeconfig('kube-router')}",
        f"--hostname-override={NODE_NAME}",
        "--run-firewall=true",
        "--run-router=false",
        "--run-service-proxy=false",
        "--enable-cni=false",
        "--enable-ipv4=true",
        "--enable-ipv6=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--health-port=0",
        "--metrics-port=0",
        "--iptables-sync-period=5s",
        "--v=1",
    ]


def metrics_server_args(bin_path: Path, node: NodeLayout) -> list[str]:
    kubeconfig = node.kubeconfig("metrics-server")
    return [
        str(bin_path),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={NODE_IP}",
        f"--secure-port={METRICS_SERVER_PORT}",
        f"--cert-dir={node.metrics_certs}",
        "--kubelet-insecure-tls",  # the kubelet's serving certificate is self-signed
        "--kubelet-preferred-address-types=InternalIP",
        f"--node-selector={REAL_NODE_LABEL}=true",  # kwok's nodes have no kubelet to scrape
        "--metric-resolution=15s",
        "--v=1",
    ]


def real_node_pod_placement() -> dict[str, Any]:
    """What a pod spec needs to run on the real node (nodeSelector + toleration)."""
    return {
        "nodeSelector": {REAL_NODE_LABEL: "true"},
        "tolerations": [
            {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        ],
    }
