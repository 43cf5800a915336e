"""The real node's files and command lines (pure, no processes): what it listens on, where its state
lives, who it authenticates as, and that its addresses collide with nothing on this machine."""

from __future__ import annotations

import ipaddress
import subprocess
import tomllib
from pathlib import Path

from xrouter_dev.cmdlines import SERVICE_CIDR, Layout, kwok_args
from xrouter_dev.nodeaddons import addon_manifests
from xrouter_dev.nodeconfig import (
    API_SERVICE_IP,
    DNS_SERVICE_IP,
    NODE_IDENTITIES,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
    REAL_NODE_LABEL,
    RUN_DIR,
    NodeLayout,
    cni_conflist,
    containerd_config,
    corefile,
    kube_proxy_config,
    kube_router_args,
    kubelet_args,
    kubelet_config,
    metrics_server_args,
    real_node_pod_placement,
)

CLUSTER = Layout(Path("/data"))
NODE = NodeLayout.default()
POD_NET = ipaddress.ip_network(POD_CIDR)


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv[1:] if a.startswith("--") and "=" in a)


def owned_or_loopback(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    return ip.is_loopback or ip in POD_NET


def test_containerd_keeps_all_state_under_the_node_dir_and_restricts_oom_score_adj() -> None:
    cfg = tomllib.loads(containerd_config(NODE))
    for key in ("root", "state"):
        assert Path(cfg[key]).is_relative_to(NODE.root)
    # A unix socket path has at most 104 bytes, with ttrpc's ".ttrpc" suffix: not under a deep tmp dir.
    assert Path(cfg["grpc"]["address"]).is_relative_to(RUN_DIR)
    assert len(cfg["ttrpc"]["address"]) < 104
    cri = cfg["plugins"]["io.containerd.grpc.v1.cri"]
    # No CAP_SYS_RESOURCE in this VM: without it every sandbox fails on /proc/self/oom_score_adj.
    assert cri["restrict_oom_score_adj"] is True
    assert cri["stream_server_address"] == "127.0.0.1"
    assert cri["sandbox_image"].startswith("localhost/")  # the locally built pause, never pulled
    assert Path(cri["cni"]["conf_dir"]).is_relative_to(NODE.root)
    assert "io.containerd.internal.v1.opt" in cfg["disabled_plugins"]  # would write /opt/containerd


def test_everything_the_node_serves_is_on_loopback_or_its_bridge() -> None:
    kubelet = kubelet_config(NODE, CLUSTER, 12345)
    assert owned_or_loopback(kubelet["address"]) and owned_or_loopback(kubelet["healthzBindAddress"])
    assert kubelet["readOnlyPort"] == 0
    proxy = kube_proxy_config(NODE, 1, 2)
    for key in ("bindAddress",):
        assert owned_or_loopback(proxy[key])
    for key in ("healthzBindAddress", "metricsBindAddress"):
        assert owned_or_loopback(proxy[key].rsplit(":", 1)[0])
    assert [ipaddress.ip_network(n).subnet_of(POD_NET) for n in proxy["nodePortAddresses"]] == [True]
    assert f"bind {NODE_IP}" in corefile(NODE)
    ms = flags(metrics_server_args(Path("/bin/metrics-server"), NODE))
    assert owned_or_loopback(ms["bind-address"])
    kr = flags(kube_router_args(Path("/bin/kube-router"), NODE))
    assert kr["health-port"] == "0" and kr["metrics-port"] == "0"  # kube-router would bind 0.0.0.0


def test_kube_router_runs_only_its_firewall() -> None:
    kr = flags(kube_router_args(Path("/bin/kube-router"), NODE))
    assert (kr["run-firewall"], kr["run-router"], kr["run-service-proxy"]) == ("true", "false", "false")


def test_kubelet_uses_a_node_identity_not_admin() -> None:
    assert NODE_IDENTITIES["kubelet"] == (f"system:node:{NODE_NAME}", ("system:nodes",))
    argv = flags(kubelet_args(Path("/bin/kubelet"), NODE))
    assert argv["kubeconfig"] == str(NODE.kubeconfig("kubelet"))
    assert argv["node-labels"] == f"{REAL_NODE_LABEL}=true"
    cfg = kubelet_config(NODE, CLUSTER, 1)
    assert cfg["authentication"]["anonymous"]["enabled"] is False
    assert cfg["authorization"]["mode"] == "Webhook"
    assert cfg["clusterDNS"] == [DNS_SERVICE_IP]
    assert cfg["containerRuntimeEndpoint"] == f"unix://{NODE.containerd_socket}"


def test_the_real_node_is_tainted_and_pods_opt_in() -> None:
    taints = kubelet_config(NODE, CLUSTER, 1)["registerWithTaints"]
    placement = real_node_pod_placement()
    assert placement["nodeSelector"] == {REAL_NODE_LABEL: "true"}
    tol = placement["tolerations"][0]
    assert [(t["key"], t["value"], t["effect"]) for t in taints] == [
        (tol["key"], tol["value"], tol["effect"])
    ]


def test_kwok_does_not_manage_the_real_node() -> None:
    kwok = flags(kwok_args(Path("/bin/kwok"), CLUSTER))
    assert kwok["manage-all-nodes"] == "false"
    # The kubelet registers its own Node object, with no kwok annotation.
    assert kwok["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"


def test_address_ranges_are_distinct_and_free_on_this_machine() -> None:
    services = ipaddress.ip_network(SERVICE_CIDR)
    kwok_pods = ipaddress.ip_network(flags(kwok_args(Path("/bin/kwok"), CLUSTER))["cidr"], strict=False)
    assert not POD_NET.overlaps(services) and not POD_NET.overlaps(kwok_pods)
    assert (
        ipaddress.ip_address(DNS_SERVICE_IP) in services and ipaddress.ip_address(API_SERVICE_IP) in services
    )
    assert ipaddress.ip_address(NODE_IP) in POD_NET
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    for line in routes.splitlines():
        dest = line.split()[0] if not line.startswith(("local", "broadcast")) else line.split()[1]
        if dest in ("default", "unreachable") or "xrbr0" in line:
            continue
        net = ipaddress.ip_network(dest, strict=False)
        assert not net.overlaps(POD_NET) and not net.overlaps(services), line


def test_cni_network_is_the_launchers_bridge_without_nat() -> None:
    conf = cni_conflist(NODE)
    bridge = conf["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": POD_CIDR, "gateway": NODE_IP}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(NODE.root)


def test_addons_point_services_at_the_node_address() -> None:
    objs = {(o["kind"], o["metadata"]["name"]): o for o in addon_manifests()}
    assert objs[("Service", "kube-dns")]["spec"]["clusterIP"] == DNS_SERVICE_IP
    for name in ("kube-dns", "metrics-server", "kubernetes"):
        subsets = objs[("Endpoints", name)]["subsets"]
        assert [a["ip"] for a in subsets[0]["addresses"]] == [NODE_IP]
    assert objs[("APIService", "v1beta1.metrics.k8s.io")]["spec"]["service"]["name"] == "metrics-server"
