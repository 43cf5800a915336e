"""The `make cluster` daemon: a LocalCluster in a state directory, started in the background.

python -m xrouter_dev.daemon start --dir .cluster   # daemonizes; .cluster/kubeconfig once ready
python -m xrouter_dev.daemon status --dir .cluster
python -m xrouter_dev.daemon stop --dir .cluster
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from xrouter_dev import nodehost
from xrouter_dev.cluster import LocalCluster
from xrouter_dev.nodeconfig import NodeLayout
from xrouter_dev.realnode import RealNode
from xrouter_dev.supervise import signal_group as _signal_group
from xrouter_dev.tools import K8S_VERSION, tools_dir


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
        f"  kubectl get nodes -o wide -L topology.kubernetes.io/zone\n"
        + (
            f"  real node xrouter-node Ready {info['real_node_seconds']:.1f}s after the control plane\n"
            if info.get("real_node_seconds") is not None
            else ""
        )
        + (
            f"  our images (make images) loaded into its containerd in {info['images_seconds']:.1f}s\n"
            if info.get("images_seconds") is not None
            else ""
        )
        + f"  audit log: {info['audit_log']}\n"
        f"  logs: {state.data.resolve() / 'logs'}\n"
        f"  stop: make cluster-down"
    )


def cmd_start(state: StateDir, timeout: float, real_node: bool = False) -> int:
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
            [sys.executable, "-m", "xrouter_dev.daemon", "_run", "--dir", str(state.root)]
            + (["--real-node"] if real_node else []),
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


def cmd_run(state: StateDir, real_node: bool = False) -> int:
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
    cluster = LocalCluster(workdir=state.data, remove_workdir=True, real_node=real_node)
    code = 0
    images_seconds: float | None = None
    try:
        cluster.start()
        if cluster.real_node is not None:
            # What `make images` built (make cluster depends on it), so that an XRouter applied right
            # after `make cluster` with localhost/xrouter:dev (pullPolicy Never) runs: before the
            # node said Ready, only the pause image was in its containerd.
            t0 = time.monotonic()
            loaded = cluster.real_node.load_images(build=False)
            images_seconds = time.monotonic() - t0
            print(f"loaded {len(loaded)} images into the real node in {images_seconds:.1f}s", flush=True)
        shutil.copyfile(cluster.kubeconfig, state.kubeconfig)
        state.kubeconfig.chmod(0o600)
        components = cluster.components + (cluster.real_node.components if cluster.real_node else [])
        state.children.write_text(json.dumps({c.name: c.proc.pid for c in components}))
        info = {
            "server_url": cluster.server_url,
            "kubeconfig": str(state.kubeconfig.resolve()),
            "audit_log": str(cluster.audit_log),
            "startup_seconds": cluster.startup_seconds,
            "real_node_seconds": cluster.real_node.startup_seconds if cluster.real_node else None,
            "images_seconds": images_seconds,
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
    # A recorded PID is still ours if its command line names our tools or our data directory
    # (containerd's config lives there): never a reused PID of someone else's process.
    marks = (str(tools_dir() / "bin"), str(state.data))
    for pid in children.values():
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
            if any(m in cmdline for m in marks):
                yield pid


def _undo_real_node(state: StateDir) -> None:
    """After a launcher died without tearing its real node down: undo the recorded host changes."""
    record = NodeLayout.default().record
    if record.exists():
        left = nodehost.teardown(record, RealNode.cleanup_commands(), log=print)
        if left:
            print("could not remove: " + ", ".join(left), file=sys.stderr)


def cmd_stop(state: StateDir) -> int:
    pid = _read_pid(state.pid)
    if pid is None or not _pid_alive(pid):
        leftovers = list(_our_children(state))
        for child in leftovers:
            _signal_group(child, signal.SIGKILL)
        _undo_real_node(state)
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
    _undo_real_node(state)
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
    parser = argparse.ArgumentParser(prog="python -m xrouter_dev.daemon", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "_run"])
    parser.add_argument(
        "--dir", type=Path, default=Path(".cluster"), help="state directory (default .cluster)"
    )
    # A real node's first start imports every image (about a minute) before the cluster is ready.
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for readiness")
    parser.add_argument(
        "--real-node", action="store_true", help="add the real node xrouter-node (containerd, kubelet)"
    )
    args = parser.parse_args(argv)
    state = StateDir(args.dir.resolve())
    if args.command == "start":
        return cmd_start(state, args.timeout, args.real_node)
    if args.command == "stop":
        return cmd_stop(state)
    if args.command == "status":
        return cmd_status(state)
    return cmd_run(state, args.real_node)


if __name__ == "__main__":
    sys.exit(main())
