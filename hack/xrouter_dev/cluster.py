"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok (fake nodes), all built from source by hack/build-tools.sh; optionally one real node
(xrouter_dev.realnode) beside the fake ones.

Library use (tests, `make up`)::

    with LocalCluster() as c:
        c.kubectl("get", "nodes")

The `make cluster` daemon is xrouter_dev.daemon (`python -m xrouter_dev.daemon start|stop|status`).
The launcher is split by concern: tools (paths, pins), cmdlines (files and command lines), pki
(certificates, kubeconfigs), supervise (processes), kubectl, daemon (CLI); this module composes them
and re-exports their public names.

Everything binds to 127.0.0.1 on free ports; data lives in a temporary directory that is removed on stop.
Every process is started in its own process group, dies with the launcher (PR_SET_PDEATHSIG) and is
stopped on exit, SIGTERM, Ctrl-C, or the end of a `with` block.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml

from xrouter_dev import pki
from xrouter_dev.cmdlines import (
    ADMIN_USER,
    AUDIT_POLICY,
    DISABLED_CONTROLLERS,
    KWOK_NODE_ANNOTATION,
    SERVICE_CIDR,
    ZONES,
    Layout,
    Ports,
    apiserver_args,
    controller_manager_args,
    etcd_args,
    kubeconfig_dict,
    kwok_args,
    node_manifest,
    scheduler_args,
)
from xrouter_dev.kubectl import KubectlError, run_kubectl
from xrouter_dev.realnode import RealNode
from xrouter_dev.supervise import Component, spawn, stop_components
from xrouter_dev.tools import DEFAULT_TOOLS_DIR, K8S_VERSION, free_port, tools_bin, tools_dir

__all__ = [
    "ADMIN_USER",
    "AUDIT_POLICY",
    "DEFAULT_TOOLS_DIR",
    "DISABLED_CONTROLLERS",
    "K8S_VERSION",
    "KWOK_NODE_ANNOTATION",
    "SERVICE_CIDR",
    "ZONES",
    "ClusterError",
    "Component",
    "ExistingCluster",
    "KubectlError",
    "Layout",
    "LocalCluster",
    "Ports",
    "apiserver_args",
    "controller_manager_args",
    "etcd_args",
    "free_port",
    "kubeconfig_dict",
    "kwok_args",
    "node_manifest",
    "run_kubectl",
    "scheduler_args",
    "tools_bin",
    "tools_dir",
]

CONTROL_PLANE_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)


class ClusterError(RuntimeError):
    """The control plane could not be started or did not become ready."""


@dataclass
class _Timer:
    start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.start


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok with 3 fake nodes."""

    def __init__(
        self,
        workdir: Path | None = None,
        tools_dir: Path | None = None,
        *,
        remove_workdir: bool | None = None,
        log: Callable[[str], None] | None = None,
        real_node: bool = False,
    ) -> None:
        self._tools = tools_dir
        created = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="xrouter-cluster-")) if workdir is None else workdir
        self._remove_workdir = created if remove_workdir is None else remove_workdir
        self.layout = Layout(self.workdir.resolve())
        self.kubeconfig: Path = self.layout.kubeconfig
        self.audit_log: Path | None = self.layout.audit_log
        self.server_url: str = ""
        self.startup_seconds: float | None = None
        self.components: list[Component] = []
        self._log = log or (lambda msg: print(f"[cluster] {msg}", file=sys.stderr, flush=True))
        self._ssl: ssl.SSLContext | None = None
        self._stopped = False
        self._started = False
        self._prev_sigterm: Any = None
        self._lock = threading.Lock()
        self._want_real_node = real_node
        self.real_node: RealNode | None = None
        atexit.register(self.stop)

    # -- context manager --------------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- public ---------------------------------------------------------------------------------------------
    def bin(self, name: str) -> Path:
        return tools_bin(name, self._tools)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for tool in CONTROL_PLANE_TOOLS:
            self.bin(tool)  # fail fast, with "run make tools", before anything starts
        self._install_sigterm_handler()
        timer = _Timer()
        try:
            self._start(timer)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = timer()
        self._log(f"control plane ready in {self.startup_seconds:.1f}s at {self.server_url}")

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.real_node is not None:
            # Before the control plane: draining the node's pods needs the API server.
            self.real_node.stop()
        stop_components(self.components)
        if self._prev_sigterm is not None and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, self._prev_sigterm)
            self._prev_sigterm = None
        if self._remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(
            self.bin("kubectl"), self.kubeconfig, args, input=input, check=check, timeout=timeout
        )

    def api_get(self, path: str) -> Any:
        """GET a path on the API server with the admin identity; returns the decoded JSON."""
        with urllib.request.urlopen(self.server_url + path, context=self._ssl_context(), timeout=10) as r:
            return json.loads(r.read())

    def api_post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.server_url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, context=self._ssl_context(), timeout=10) as r:
            return json.loads(r.read())

    def dead_components(self) -> list[Component]:
        node = self.real_node.components if self.real_node and not self.real_node.stopped else []
        return [c for c in [*self.components, *node] if not c.alive()]

    # -- internals ------------------------------------------------------------------------------------------
    def _install_sigterm_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            self.stop()
            raise SystemExit(128 + signum)

        self._prev_sigterm = signal.signal(signal.SIGTERM, on_sigterm)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=str(self.layout.pem("ca.crt")))
            ctx.load_cert_chain(str(self.layout.pem("admin.crt")), str(self.layout.pem("admin.key")))
            self._ssl = ctx
        return self._ssl

    def _spawn(self, name: str, argv: Sequence[str]) -> Component:
        if self._stopped:
            raise ClusterError("cluster is stopping")
        comp = spawn(name, argv, self.layout.logs, self.layout.root)
        self.components.append(comp)
        return comp

    def _check_alive(self) -> None:
        dead = self.dead_components()
        if dead:
            c = dead[0]
            raise ClusterError(f"{c.name} exited with code {c.proc.returncode}; last log lines:\n{c.tail()}")

    def _wait(self, what: str, probe: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if probe():
                    return
            except (OSError, urllib.error.URLError, ValueError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name}:\n{c.tail(15)}" for c in self.components)
                raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
            time.sleep(0.1)

    def _write_files(self, ports: Ports) -> None:
        self.server_url = f"https://127.0.0.1:{ports.apiserver}"
        pki.write_control_plane(self.layout, self.server_url)

    def _start(self, timer: _Timer) -> None:
        lay = self.layout
        if lay.etcd_data.exists():
            shutil.rmtree(lay.etcd_data)
        ports = Ports.pick()
        self._write_files(ports)
        self._log(f"data in {lay.root}; certificates written at {timer():.1f}s")

        self._spawn("etcd", etcd_args(self.bin("etcd"), lay, ports))

        def etcd_healthy() -> bool:
            url = f"http://127.0.0.1:{ports.etcd_client}/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(json.loads(r.read()).get("health") == "true")

        self._wait("etcd", etcd_healthy, 30)
        self._log(f"etcd healthy at {timer():.1f}s")

        self._spawn("kube-apiserver", apiserver_args(self.bin("kube-apiserver"), lay, ports))

        def readyz() -> bool:
            with urllib.request.urlopen(
                self.server_url + "/readyz", context=self._ssl_context(), timeout=5
            ) as r:
                return bool(r.status == 200 and r.read().strip() == b"ok")

        self._wait("kube-apiserver /readyz", readyz, 90)
        self._log(f"kube-apiserver ready at {timer():.1f}s")

        self._spawn(
            "kube-controller-manager",
            controller_manager_args(self.bin("kube-controller-manager"), lay),
        )
        self._spawn("kube-scheduler", scheduler_args(self.bin("kube-scheduler"), lay))
        self._spawn("kwok", kwok_args(self.bin("kwok"), lay))
        for i, zone in enumerate(ZONES):
            self.api_post("/api/v1/nodes", node_manifest(i, zone))

        def nodes_ready() -> bool:
            # Ready, and the node-lifecycle controller has lifted its not-ready taint: until then
            # the scheduler would leave new pods Pending.
            items = self.api_get("/api/v1/nodes")["items"]
            ready = [
                n
                for n in items
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
                and not n.get("spec", {}).get("taints")
            ]
            return len(ready) >= len(ZONES)

        self._wait("fake nodes Ready and untainted", nodes_ready, 60)
        self._log(f"{len(ZONES)} nodes Ready at {timer():.1f}s")

        def default_sa() -> bool:
            self.api_get("/api/v1/namespaces/default/serviceaccounts/default")
            return True

        self._wait("the default ServiceAccount", default_sa, 60)
        if self._want_real_node:
            self.start_real_node()

    def start_real_node(self, timeout: float = 120) -> RealNode:
        """Add the real node `xrouter-node` (xrouter_dev.realnode) to this running cluster."""
        if self.real_node is None or self.real_node.stopped:
            node = RealNode(self, self._log)
            self.real_node = node
            node.start(timeout)
        return self.real_node


class ExistingCluster:
    """A cluster someone else runs (XROUTER_TEST_KUBECONFIG): same surface as LocalCluster, no audit log."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.audit_log: Path | None = None
        config = yaml.safe_load(kubeconfig.read_text()) or {}
        clusters = config.get("clusters") or [{}]
        self.server_url: str = str(clusters[0].get("cluster", {}).get("server", ""))
        try:
            self._kubectl = tools_bin("kubectl")
        except FileNotFoundError:
            found = shutil.which("kubectl")
            if not found:
                raise
            self._kubectl = Path(found)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self._kubectl, self.kubeconfig, args, input=input, check=check, timeout=timeout)
