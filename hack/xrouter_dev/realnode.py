"""One real node, `xrouter-node`, beside kwok's fake ones: containerd + runc + CNI bridge, the kubelet,
kube-proxy, CoreDNS, kube-router (NetworkPolicy) and metrics-server, all on this host.

    with LocalCluster(real_node=True) as c:      # or c.start_real_node() on a running cluster
        c.kubectl("get", "nodes", "-o", "wide")  # xrouter-node Ready, containerd://1.6.x

The node is tainted `xrouter.io/real-node=true:NoSchedule`; pods opt in with a toleration and the
nodeSelector `xrouter.io/real-node=true` (nodeconfig.real_node_pod_placement()). Needs root, the Debian
packages from hack/install-deps.sh and the tools from hack/build-tools.sh. Host changes are recorded
(nodehost) and undone on stop, also after a crash by `make cluster-down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import yaml

from xrouter_dev import certs, imageload, images, nodehost, pki
from xrouter_dev.cmdlines import Layout
from xrouter_dev.nodeaddons import PV_COUNT, addon_manifests, local_volumes
from xrouter_dev.nodeconfig import (
    API_RELAY_PORT,
    NODE_IDENTITIES,
    NODE_IP,
    NODE_NAME,
    NODE_TOOLS,
    NodeLayout,
    cni_conflist,
    containerd_config,
    coredns_args,
    corefile,
    kube_proxy_args,
    kube_proxy_config,
    kube_router_args,
    kubelet_args,
    kubelet_config,
    metrics_server_args,
)
from xrouter_dev.supervise import Component, spawn, stop_components
from xrouter_dev.tools import free_port, tools_bin

SYSTEM_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ipset", "conntrack")


class NodeError(RuntimeError):
    """The real node could not be started or did not become Ready."""


def missing_prerequisites() -> list[str]:
    """What this machine lacks for a real node (empty when it can run one)."""
    missing = [f"{t} (run make deps)" for t in SYSTEM_TOOLS if shutil.which(t) is None]
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("/usr/lib/cni/bridge (run make deps: containernetworking-plugins)")
    for tool in NODE_TOOLS:
        try:
            tools_bin(tool)
        except FileNotFoundError:
            missing.append(f"{tool} (run make tools)")
    if os.geteuid() != 0:
        missing.append("root (the node creates a bridge, cgroups and iptables rules)")
    return missing


class _Relay(socketserver.ThreadingTCPServer):
    """Pods reach the API server (bound to 127.0.0.1) at NODE_IP:API_RELAY_PORT: the kubernetes
    Service's endpoint. A plain TCP relay; TLS is end to end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        super().__init__((NODE_IP, API_RELAY_PORT), _RelayHandler)


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, _Relay)
        try:
            upstream = socket.create_connection(("127.0.0.1", server.target_port), timeout=10)
        except OSError:
            return
        upstream.settimeout(None)
        client: socket.socket = self.request

        def pump(src: socket.socket, dst: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := src.recv(65536):
                    dst.sendall(data)
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        t.start()
        pump(client, upstream)
        t.join()
        upstream.close()


class ControlPlane(Protocol):
    """What the node needs of the cluster it joins (cluster.LocalCluster is one): a protocol here,
    so that this module does not import the cluster that imports it."""

    layout: Layout
    server_url: str

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...

    def api_get(self, path: str) -> Any: ...


class RealNode:
    def __init__(self, cluster: ControlPlane, log: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.layout = NodeLayout.default()
        self.components: list[Component] = []
        self.startup_seconds: float | None = None
        self._log = log
        self._lock = nodehost.NodeLock()
        self._relay: _Relay | None = None
        self._started = False
        self._stopped = False

    # -- public ---------------------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._stopped

    def start(self, timeout: float = 120) -> None:
        missing = missing_prerequisites()
        if missing:
            raise NodeError("the real node needs: " + "; ".join(missing))
        self._lock.acquire()
        self._started = True
        t0 = time.monotonic()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        self._log(f"real node {NODE_NAME} Ready in {self.startup_seconds:.1f}s")

    def load_images(self, build: bool = True, only: list[str] | None = None) -> list[str]:
        """Build (or reuse, by content) the images of `make images` and import them into containerd."""
        if build:
            images.build_all(self._log, only=only)
        return imageload.load_into(self.layout.containerd_socket, self._log, only=only)

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """ctr against the node's containerd, in the CRI namespace (k8s.io)."""
        argv = ["ctr", f"--address={self.layout.containerd_socket}", "--namespace=k8s.io", *args]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise NodeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def stop(self) -> list[str]:
        """Stop the node's pods and processes and undo every host change; returns what is left (empty)."""
        if self._stopped or not self._started:
            return []
        self._stopped = True
        with contextlib.suppress(Exception):
            self._drain()
        # kube-router and kube-proxy first (their cleanups need the chains they made), the kubelet
        # before containerd.
        stop_components(list(reversed(self.components)))
        if self._relay is not None:
            self._relay.shutdown()
            self._relay.server_close()
        left = nodehost.teardown(self.layout.record, self.cleanup_commands(), self._log)
        self._lock.release()
        if left:
            self._log("real node teardown left: " + ", ".join(left))
        return left

    # -- internals ------------------------------------------------------------------------------------------
    @staticmethod
    def cleanup_commands() -> list[list[str]]:
        """kube-proxy's and kube-router's own removal of the iptables rules and ipsets they made."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            out.append([str(tools_bin("kube-proxy")), "--cleanup", "--v=0"])
        with contextlib.suppress(FileNotFoundError):
            out.append([str(tools_bin("kube-router")), "--cleanup-config"])
        return out

    def _spawn(self, name: str, argv: list[str]) -> Component:
        comp = spawn(name, argv, self.cluster.layout.logs, self.layout.root)
        self.components.append(comp)
        return comp

    def _write_files(self) -> None:
        lay = self.layout
        for d in (
            lay.root,
            lay.containerd,
            lay.cni_conf_dir,
            lay.cni_data,
            lay.kubelet_dir,
            lay.metrics_certs,
        ):
            d.mkdir(parents=True, exist_ok=True)
        # hostPath volumes get no fsGroup: let any pod user (the backup Job runs as UID 70) write.
        for i in range(PV_COUNT):
            (lay.volumes / f"pv-{i}").mkdir(parents=True, exist_ok=True)
            (lay.volumes / f"pv-{i}").chmod(0o777)
        ca = pki.load_ca(self.cluster.layout)
        for component, (user, groups) in NODE_IDENTITIES.items():
            pki.write_kubeconfig(lay.kubeconfig(component), self.cluster.server_url, ca, user, groups)
        certs.issue(ca, NODE_NAME, dns_names=(NODE_NAME,), ip_addresses=(NODE_IP,), server=True).write(
            lay.root, "kubelet-serving"
        )
        lay.containerd_config.write_text(containerd_config(lay))
        (lay.cni_conf_dir / "10-xrouter.conflist").write_text(json.dumps(cni_conflist(lay), indent=2))
        lay.kubelet_config.write_text(yaml.safe_dump(kubelet_config(lay, self.cluster.layout, free_port())))
        lay.kube_proxy_config.write_text(yaml.safe_dump(kube_proxy_config(lay, free_port(), free_port())))
        lay.corefile.write_text(corefile(lay))
        # Pods with dnsPolicy Default get no outside resolver: nothing beyond the cluster is resolved.
        lay.resolv_conf.write_text("options ndots:1\n")

    def _wait(self, what: str, probe: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            dead = [c for c in self.components if not c.alive()]
            if dead:
                c = dead[0]
                raise NodeError(f"{c.name} exited with code {c.proc.returncode}; last log lines:\n{c.tail()}")
            with contextlib.suppress(Exception):
                if probe():
                    return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name}:\n{c.tail(15)}" for c in self.components)
                raise NodeError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
            time.sleep(0.2)

    def _start(self, timeout: float) -> None:
        lay = self.layout
        if lay.record.exists():
            # A node whose launcher was killed: we hold the lock, so nobody runs it; undo its changes.
            self._log("undoing the host changes of a real node that was not torn down")
            nodehost.teardown(lay.record, self.cleanup_commands(), self._log)
        if lay.root.exists():
            shutil.rmtree(lay.root)
        self._write_files()
        record = nodehost.HostRecord()
        nodehost.prepare(record, lay.record, lay.root, lay.containerd_socket)
        port = int(self.cluster.server_url.rsplit(":", 1)[1])
        self._relay = _Relay(port)
        threading.Thread(target=self._relay.serve_forever, daemon=True, name="api-relay").start()

        self._spawn("containerd", ["containerd", f"--config={lay.containerd_config}"])
        self._wait("containerd", lambda: self.ctr("version", check=False, timeout=5).returncode == 0, 30)
        # Only the sandbox image here; the rest when a test or `make images` asks (load_images).
        imageload.load_into(lay.containerd_socket, log=self._log, only=["pause"])

        manifests = {
            "apiVersion": "v1",
            "kind": "List",
            "items": addon_manifests() + local_volumes(lay.volumes),
        }
        self.cluster.kubectl("apply", "-f", "-", input=json.dumps(manifests))
        self._spawn("coredns", coredns_args(tools_bin("coredns"), lay))
        self._spawn("kubelet", kubelet_args(tools_bin("kubelet"), lay))
        self._wait(f"node {NODE_NAME} Ready", self._node_ready, timeout)
        # A node restarted in the same cluster keeps its Node object, which the last stop cordoned.
        self.cluster.kubectl("uncordon", NODE_NAME)
        self._spawn("kube-proxy", kube_proxy_args(tools_bin("kube-proxy"), lay))
        self._spawn("kube-router", kube_router_args(tools_bin("kube-router"), lay))
        self._spawn("metrics-server", metrics_server_args(tools_bin("metrics-server"), lay))
        nodehost.note_shims(nodehost.HostRecord.load(lay.record), lay.record)

    def node(self) -> dict[str, Any]:
        return dict(self.cluster.api_get(f"/api/v1/nodes/{NODE_NAME}"))

    def _node_ready(self) -> bool:
        conditions = self.node().get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _drain(self) -> None:
        """Cordon the node and delete its pods, so the kubelet stops their sandboxes (and CNI removes
        their network namespaces) before the kubelet itself stops."""
        self.cluster.kubectl("cordon", NODE_NAME, check=False, timeout=20)
        self.cluster.kubectl(
            "delete", "pods", "--all-namespaces", f"--field-selector=spec.nodeName={NODE_NAME}",
            "--grace-period=0", "--force", "--wait=false", check=False, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            out = self.ctr("tasks", "ls", "-q", check=False, timeout=10).stdout.split()
            if not out:
                return
            time.sleep(0.5)
