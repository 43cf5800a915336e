"""Command lines and files the launcher builds (pure, no processes)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
from xrouter_dev import certs
from xrouter_dev.cluster import (
    AUDIT_POLICY,
    ZONES,
    KubectlError,
    Layout,
    Ports,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    kubeconfig_dict,
    kwok_args,
    node_manifest,
    scheduler_args,
    tools_bin,
)

LAYOUT = Layout(Path("/data"))
PORTS = Ports(etcd_client=2379, etcd_peer=2380, apiserver=6443)


def flags(argv: list[str]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in argv[1:] if a.startswith("--"))


def test_ports_are_distinct_and_free() -> None:
    p = Ports.pick()
    assert len({p.etcd_client, p.etcd_peer, p.apiserver}) == 3


def test_everything_binds_loopback_only() -> None:
    e = flags(etcd_args(Path("/bin/etcd"), LAYOUT, PORTS))
    assert e["listen-client-urls"] == "http://127.0.0.1:2379"
    assert e["listen-peer-urls"] == "http://127.0.0.1:2380"
    a = flags(apiserver_args(Path("/bin/kube-apiserver"), LAYOUT, PORTS))
    assert a["bind-address"] == "127.0.0.1" and a["secure-port"] == "6443"
    assert a["etcd-servers"] == "http://127.0.0.1:2379"
    for argv in (controller_manager_args(Path("/kcm"), LAYOUT), scheduler_args(Path("/s"), LAYOUT)):
        f = flags(argv)
        assert f["bind-address"] == "127.0.0.1" and f["secure-port"] == "0"


def test_apiserver_security_and_audit() -> None:
    a = flags(apiserver_args(Path("/bin/kube-apiserver"), LAYOUT, PORTS))
    assert a["authorization-mode"] == "Node,RBAC"
    assert a["client-ca-file"] == "/data/pki/ca.crt"
    assert a["service-account-signing-key-file"] == "/data/pki/sa.key"
    assert a["audit-log-path"] == "/data/audit.log"
    assert a["audit-policy-file"] == "/data/audit-policy.yaml"


def test_controller_manager_can_sign_tokens() -> None:
    f = flags(controller_manager_args(Path("/kcm"), LAYOUT))
    assert f["service-account-private-key-file"] == "/data/pki/sa.key"
    assert f["root-ca-file"] == "/data/pki/ca.crt"
    assert f["controllers"].startswith("*,")
    assert f["use-service-account-credentials"] == "true"


def test_kwok_manages_only_annotated_nodes() -> None:
    f = flags(kwok_args(Path("/kwok"), LAYOUT))
    assert f["manage-all-nodes"] == "false"
    assert f["manage-nodes-with-annotation-selector"] == "kwok.x-k8s.io/node=fake"
    node = node_manifest(0, "zone-a")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"


def test_nodes_have_zones_hostnames_and_no_taints() -> None:
    nodes = [node_manifest(i, z) for i, z in enumerate(ZONES)]
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == list(ZONES)
    for n in nodes:
        assert n["metadata"]["labels"]["kubernetes.io/hostname"] == n["metadata"]["name"]
        assert "taints" not in n["spec"]


def test_audit_policy_logs_writes_only() -> None:
    rules = AUDIT_POLICY["rules"]
    assert rules[0]["level"] == "Metadata"
    assert set(rules[0]["verbs"]) >= {"create", "update", "patch", "delete"}
    assert rules[-1] == {"level": "None"}


def test_kubeconfig_is_self_contained() -> None:
    ca = certs.make_ca()
    client = certs.issue(ca, "u", client=True)
    cfg = kubeconfig_dict("https://127.0.0.1:6443", ca.cert_pem, client, "u")
    assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]) == ca.cert_pem
    assert base64.b64decode(cfg["users"][0]["user"]["client-key-data"]) == client.key_pem
    assert cfg["current-context"] == cfg["contexts"][0]["name"]


def test_tools_bin_says_how_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XROUTER_TOOLS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make tools"):
        tools_bin("helm")
    (tmp_path / "bin").mkdir()
    helm = tmp_path / "bin" / "helm"
    helm.write_text("#!/bin/sh\n")
    helm.chmod(0o755)
    assert tools_bin("helm") == helm


def test_kubectl_error_shows_stderr() -> None:
    err = KubectlError(1, ["/bin/kubectl", "--kubeconfig=/k", "get", "pods"], "", "error: forbidden\n")
    assert str(err) == "kubectl get pods exited 1:\nerror: forbidden"
    assert isinstance(err, subprocess.CalledProcessError)
