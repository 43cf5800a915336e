"""A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok (fake nodes), all built from source by hack/build-tools.sh.

Library use (tests, `make up`)::

    with LocalCluster() as c:
        c.kubectl("get", "nodes")

CLI (`make cluster` / `make cluster-down`)::

    python -m xrouter_dev.cluster start --dir .cluster   # daemonizes; .cluster/kubeconfig once ready
    python -m xrouter_dev.cluster status --dir .cluster
    python -m xrouter_dev.cluster stop --dir .cluster

Everything binds to 127.0.0.1 on free ports; data lives in a temporary directory that is removed on stop.
Every process is started in its own process group, dies with the launcher (PR_SET_PDEATHSIG) and is
stopped on exit, SIGTERM, Ctrl-C, or the end of a `with` block.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml

from xrouter_dev import certs

DEFAULT_TOOLS_DIR = Path.home() / ".cache" / "xrouter" / "tools"
# Must match the pins in hack/build-tools.sh.
K8S_VERSION = "v1.33.13"
ZONES = ("zone-a", "zone-b", "zone-c")
ADMIN_USER = "xrouter-admin"
SERVICE_CIDR = "10.96.0.0/16"  # an address range for Service objects only; no traffic ever goes there
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CONTROL_PLANE_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
)

AUDIT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
        {"level": "None"},
    ],
}


class ClusterError(RuntimeError):
    """The control plane could not be started or did not become ready."""


def tools_dir() -> Path:
    """Where hack/build-tools.sh puts its output ($XROUTER_TOOLS_DIR, default ~/.cache/xrouter/tools)."""
    env = os.environ.get("XROUTER_TOOLS_DIR")
    return Path(env) if env else DEFAULT_TOOLS_DIR


def tools_bin(name: str, tools: Path | None = None) -> Path:
    """Path of a built tool, e.g. tools_bin("helm"); raises FileNotFoundError if it is not built."""
    path = (tools or tools_dir()) / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"{name} is not built at {path}: run `make tools` (bash hack/build-tools.sh)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------------------
# Pure builders: files and command lines.


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


# --------------------------------------------------------------------------------------------------------
# Processes.


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGKILL if the launcher dies, so nothing is orphaned even on kill -9."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Component:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


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
        for comp in self.components:
            if comp.alive():
                _signal_group(comp.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for comp in self.components:
            try:
                comp.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(comp.proc.pid, signal.SIGKILL)
                comp.proc.wait()
            # Anything left in the group (the components fork nothing, but be thorough).
            _signal_group(comp.proc.pid, signal.SIGKILL)
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
        return [c for c in self.components if not c.alive()]

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
        log_path = self.layout.logs / f"{name}.log"
        with open(log_path, "ab") as log_file:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.layout.root,
                start_new_session=True,
                # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only from the main thread.
                preexec_fn=_set_pdeathsig
                if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread()
                else None,
            )
        comp = Component(name, proc, log_path)
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
        lay = self.layout
        for d in (lay.root, lay.pki, lay.logs):
            d.mkdir(parents=True, exist_ok=True)
        lay.pki.chmod(0o700)
        ca = certs.make_ca()
        ca.write(lay.pki, "ca")
        certs.issue(
            ca,
            "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=("127.0.0.1", "10.96.0.1"),
            server=True,
        ).write(lay.pki, "apiserver")
        sa_key, sa_pub = certs.make_signing_key()
        lay.pem("sa.key").write_bytes(sa_key)
        lay.pem("sa.key").chmod(0o600)
        lay.pem("sa.pub").write_bytes(sa_pub)

        self.server_url = f"https://127.0.0.1:{ports.apiserver}"
        identities = {
            "admin": (ADMIN_USER, ("system:masters",)),
            "kube-controller-manager": ("system:kube-controller-manager", ()),
            "kube-scheduler": ("system:kube-scheduler", ()),
            "kwok": ("kwok-controller", ("system:masters",)),
        }
        for component, (user, groups) in identities.items():
            pair = certs.issue(ca, user, organizations=groups, client=True)
            if component == "admin":
                pair.write(lay.pki, "admin")
                target = self.kubeconfig
            else:
                target = lay.component_kubeconfig(component)
            target.write_text(yaml.safe_dump(kubeconfig_dict(self.server_url, ca.cert_pem, pair, user)))
            target.chmod(0o600)
        lay.audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))

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


def run_kubectl(
    kubectl: Path,
    kubeconfig: Path,
    args: Sequence[str],
    *,
    input: str | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against kubeconfig; with check, a failure raises with kubectl's stderr in the message."""
    argv = [str(kubectl), f"--kubeconfig={kubeconfig}", *args]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


class KubectlError(subprocess.CalledProcessError):
    """A failed kubectl run whose message (and so a test failure) shows kubectl's stderr."""

    def __str__(self) -> str:
        args = self.cmd[2:] if isinstance(self.cmd, list) else self.cmd
        return f"kubectl {' '.join(map(str, args))} exited {self.returncode}:\n{self.stderr or ''}".rstrip()


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


# --------------------------------------------------------------------------------------------------------
# CLI: a daemonized cluster in a directory (`make cluster`).


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def pid(self) -> Path:
        return self.root / "cluster.pid"

    @property
    def ready(self) -> Path:
        return self.root / "ready.json"

    @property
    def children(self) -> Path:
        return self.root / "children.json"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "launcher.log"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _usage(state: StateDir, info: dict[str, Any]) -> str:
    bin_dir = tools_dir() / "bin"
    return (
        f"cluster ready: {info['server_url']} (Kubernetes {K8S_VERSION}, "
        f"control plane up in {info['startup_seconds']:.1f}s)\n"
        f"  export KUBECONFIG={state.kubeconfig.resolve()}\n"
        f"  export PATH={bin_dir}:$PATH   # our kubectl and helm\n"
        f"  kubectl get nodes -L topology.kubernetes.io/zone\n"
        f"  audit log: {info['audit_log']}\n"
        f"  logs: {state.data.resolve() / 'logs'}\n"
        f"  stop: make cluster-down"
    )


def cmd_start(state: StateDir, timeout: float) -> int:
    state.root.mkdir(parents=True, exist_ok=True)
    pid = _read_pid(state.pid)
    if pid is not None and _pid_alive(pid) and state.ready.exists():
        print(f"cluster already running (pid {pid})")
        print(_usage(state, json.loads(state.ready.read_text())))
        return 0
    if pid is not None and _pid_alive(pid):
        print(f"a launcher (pid {pid}) is still starting or stuck; stopping it first", file=sys.stderr)
        cmd_stop(state)
    for stale in (state.ready, state.pid, state.kubeconfig, state.children):
        stale.unlink(missing_ok=True)
    t0 = time.monotonic()
    with open(state.log, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xrouter_dev.cluster", "_run", "--dir", str(state.root)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    while not state.ready.exists():
        if proc.poll() is not None:
            print(f"cluster failed to start (exit {proc.returncode}); {state.log}:", file=sys.stderr)
            print(state.log.read_text(errors="replace")[-4000:], file=sys.stderr)
            return 1
        if time.monotonic() - t0 > timeout:
            print(f"cluster not ready after {timeout:.0f}s; see {state.log}", file=sys.stderr)
            cmd_stop(state)
            return 1
        time.sleep(0.1)
    info = json.loads(state.ready.read_text())
    print(_usage(state, info))
    print(f"warm start took {time.monotonic() - t0:.1f}s wall clock")
    return 0


def cmd_run(state: StateDir) -> int:
    """The daemon body: start, publish, then supervise until SIGTERM/SIGINT."""
    state.root.mkdir(parents=True, exist_ok=True)
    state.pid.write_text(str(os.getpid()))
    if state.data.exists():
        shutil.rmtree(state.data)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    cluster = LocalCluster(workdir=state.data, remove_workdir=True)
    code = 0
    try:
        cluster.start()
        shutil.copyfile(cluster.kubeconfig, state.kubeconfig)
        state.kubeconfig.chmod(0o600)
        state.children.write_text(json.dumps({c.name: c.proc.pid for c in cluster.components}))
        info = {
            "server_url": cluster.server_url,
            "kubeconfig": str(state.kubeconfig.resolve()),
            "audit_log": str(cluster.audit_log),
            "startup_seconds": cluster.startup_seconds,
            "pid": os.getpid(),
        }
        tmp = state.ready.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        tmp.replace(state.ready)
        while not stop_requested.wait(1.0):
            dead = cluster.dead_components()
            if dead:
                c = dead[0]
                print(f"{c.name} exited ({c.proc.returncode}); stopping the cluster:\n{c.tail()}", flush=True)
                code = 1
                break
    except Exception as e:  # report and fall through to cleanup
        print(f"cluster failed: {e}", flush=True)
        code = 1
    finally:
        cluster.stop()
        for f in (state.ready, state.kubeconfig, state.children, state.pid):
            f.unlink(missing_ok=True)
        print("cluster stopped", flush=True)
    return code


def _our_children(state: StateDir) -> Iterator[int]:
    try:
        children: dict[str, int] = json.loads(state.children.read_text())
    except (OSError, ValueError):
        return
    bin_dir = str(tools_dir() / "bin")
    for pid in children.values():
        with contextlib.suppress(OSError):
            if bin_dir in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                yield pid


def cmd_stop(state: StateDir) -> int:
    pid = _read_pid(state.pid)
    if pid is None or not _pid_alive(pid):
        leftovers = list(_our_children(state))
        for child in leftovers:
            _signal_group(child, signal.SIGKILL)
        for f in (state.ready, state.kubeconfig, state.children, state.pid):
            f.unlink(missing_ok=True)
        shutil.rmtree(state.data, ignore_errors=True)
        print("cluster not running" + (f" (killed {len(leftovers)} leftover processes)" if leftovers else ""))
        return 0
    children = list(_our_children(state))
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _pid_alive(pid):
        _signal_group(pid, signal.SIGKILL)
    for child in children:  # PR_SET_PDEATHSIG already does this; belt and braces.
        if _pid_alive(child):
            _signal_group(child, signal.SIGKILL)
    for f in (state.ready, state.kubeconfig, state.children, state.pid):
        f.unlink(missing_ok=True)
    shutil.rmtree(state.data, ignore_errors=True)
    print("cluster stopped")
    return 0


def cmd_status(state: StateDir) -> int:
    pid = _read_pid(state.pid)
    if pid is not None and _pid_alive(pid) and state.ready.exists():
        print(_usage(state, json.loads(state.ready.read_text())))
        return 0
    print("cluster not running")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrouter_dev.cluster", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "_run"])
    parser.add_argument(
        "--dir", type=Path, default=Path(".cluster"), help="state directory (default .cluster)"
    )
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    state = StateDir(args.dir.resolve())
    if args.command == "start":
        return cmd_start(state, args.timeout)
    if args.command == "stop":
        return cmd_stop(state)
    if args.command == "status":
        return cmd_status(state)
    return cmd_run(state)


if __name__ == "__main__":
    sys.exit(main())
