"""What the real node changes on this host, written down as it happens so teardown is exact.

The record (NodeLayout.record, JSON) lists: the bridge, the cgroup directories, the sysctls with their
old values, the network namespaces and shim processes the runtime made, and the iptables chains that
were there before. `teardown(record)` undoes each, also from a fresh process after the launcher was
killed (`make cluster-down`). Processes are only ever ended by a PID that was recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from xrouter_dev.nodeconfig import BRIDGE, CGROUP_ROOT, NODE_IP, POD_CIDR

NETNS_DIR = Path("/var/run/netns")
CGROUP_FS = Path("/sys/fs/cgroup")
# One real node per machine: it owns fixed names (the bridge, POD_CIDR, the cgroup root).
LOCK_PATH = Path("/run/xrouter-real-node.lock")
# Sysctls the kubelet or kube-proxy may set; their old values are restored on teardown.
WATCHED_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/ipv4/ip_forward",
)
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw")


class HostError(RuntimeError):
    """A host change the node needs could not be made."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


@dataclass
class HostRecord:
    bridge: str = ""
    cgroups: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)
    chains_before: dict[str, list[str]] = field(default_factory=dict)
    shim_pids: list[int] = field(default_factory=list)
    mount_root: str = ""
    containerd_socket: str = ""
    run_dir: str = ""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> HostRecord:
        return cls(**json.loads(path.read_text()))


class NodeLock:
    """An exclusive flock on LOCK_PATH, held for the node's lifetime (released when the holder dies)."""

    def __init__(self) -> None:
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(LOCK_PATH, "a+")  # noqa: SIM115 - held open for the node's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise HostError(
                f"another real node is running on this machine (launcher pid {holder}); "
                "stop it first (make cluster-down)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def iptables_chains() -> dict[str, list[str]]:
    """Chain names per table, from iptables-save."""
    chains: dict[str, list[str]] = {}
    for table in IPTABLES_TABLES:
        out = _run("iptables-save", "-t", table, check=False).stdout
        chains[table] = sorted(line[1:].split()[0] for line in out.splitlines() if line.startswith(":"))
    return chains


def netns_names() -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir())
    except FileNotFoundError:
        return []


def _read_sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def prepare(record: HostRecord, record_path: Path, mount_root: Path, containerd_socket: Path) -> None:
    """Snapshot what teardown compares against, then create the bridge and the cgroup root."""
    record.mount_root = str(mount_root)
    record.containerd_socket = str(containerd_socket)
    record.run_dir = str(containerd_socket.parent)
    containerd_socket.parent.mkdir(parents=True, exist_ok=True)
    record.netns_before = netns_names()
    record.chains_before = iptables_chains()
    for name in WATCHED_SYSCTLS:
        value = _read_sysctl(name)
        if value is not None:
            record.sysctls[name] = value
    record.save(record_path)

    if Path(f"/sys/class/net/{BRIDGE}").exists():
        raise HostError(f"bridge {BRIDGE} already exists: a real node was not torn down (make cluster-down)")
    record.bridge = BRIDGE
    record.save(record_path)  # before creating: a half-made bridge is still removed
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    prefix = POD_CIDR.split("/")[1]
    _run("ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")

    record.cgroups += claim_cgroups(CGROUP_FS)
    record.save(record_path)


def claim_cgroups(cgroup_fs: Path) -> list[str]:
    """The node's cgroup root in every hierarchy under ``cgroup_fs``, created where missing; the
    ones teardown must remove."""
    claimed = []
    for hierarchy in sorted(p for p in cgroup_fs.iterdir() if p.is_dir() and not p.is_symlink()):
        target = hierarchy / CGROUP_ROOT.lstrip("/")
        if not (hierarchy / "cgroup.procs").exists():
            continue
        if target.exists():
            # Left by a node killed before its teardown (prepare's bridge check says none runs):
            # this node's teardown removes it, instead of leaving it for good.
            claimed.append(str(target))
            continue
        with contextlib.suppress(OSError):
            target.mkdir()
            claimed.append(str(target))
    return claimed


def note_shims(record: HostRecord, record_path: Path) -> None:
    """Record the PIDs of containerd shims serving our containerd (their -address names our socket).
    Shims run in their own sessions so that they outlive a containerd restart; our process-group
    kills would miss them."""
    sock = record.containerd_socket
    if not sock:
        return
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and sock.encode() in argv:
            pid = int(proc.name)
            if pid not in record.shim_pids:
                record.shim_pids.append(pid)
    record.save(record_path)


def _mounts_under(root: str) -> list[str]:
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root.rstrip("/") + "/"):
                mounts.append(point)
    return sorted(set(mounts), key=len, reverse=True)


def _serves(pid: int, socket: str) -> bool:
    try:
        return bool(socket) and socket.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_new_chains(before: dict[str, list[str]], log: Callable[[str], None]) -> None:
    """Remove chains that appeared while the node ran (and the rules jumping to them)."""
    now = iptables_chains()
    for table in IPTABLES_TABLES:
        new = set(now.get(table, [])) - set(before.get(table, []))
        if not new:
            continue
        log(f"removing iptables chains left in {table}: {', '.join(sorted(new))}")
        rules = _run("iptables-save", "-t", table, check=False).stdout.splitlines()
        for rule in rules:
            if not rule.startswith("-A "):
                continue
            parts = shlex.split(rule)
            if parts[1] not in new and any(
                parts[i] in ("-j", "-g") and parts[i + 1] in new for i in range(len(parts) - 1)
            ):
                _run("iptables", "-t", table, "-D", *parts[1:], check=False)
        for chain in new:
            _run("iptables", "-t", table, "-F", chain, check=False)
        for chain in new:
            _run("iptables", "-t", table, "-X", chain, check=False)


def _remove_cgroup_tree(path: Path) -> None:
    if not path.exists():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()


def teardown(
    record_path: Path,
    cleanups: Iterable[list[str]] = (),
    log: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Undo everything in the record, after the node's processes are stopped. cleanups are command
    lines that remove a component's own rules (kube-proxy --cleanup, kube-router --cleanup-config).
    Returns what could not be removed (empty when the host is as it was)."""
    try:
        record = HostRecord.load(record_path)
    except (OSError, ValueError):
        return []
    left: list[str] = []
    note_shims(record, record_path)
    for pid in record.shim_pids:
        # Only if it is still our shim (its command line names our socket): never a reused PID.
        if _alive(pid) and _serves(pid, record.containerd_socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_serves(p, record.containerd_socket) for p in record.shim_pids) and time.monotonic() < deadline:
        time.sleep(0.1)

    for argv in cleanups:
        if Path(argv[0]).exists():
            _run(*argv, check=False)
    _delete_new_chains(record.chains_before, log)

    for name in sorted(set(netns_names()) - set(record.netns_before)):
        if not name.startswith("cni-"):
            continue
        path = NETNS_DIR / name
        _run("umount", "-l", str(path), check=False)
        with contextlib.suppress(OSError):
            path.unlink()

    if record.mount_root:
        for point in _mounts_under(record.mount_root):
            _run("umount", "-l", point, check=False)
        left += [f"mount {m}" for m in _mounts_under(record.mount_root)]

    if record.bridge and Path(f"/sys/class/net/{record.bridge}").exists():
        _run("ip", "link", "del", record.bridge, check=False)
        if Path(f"/sys/class/net/{record.bridge}").exists():
            left.append(f"bridge {record.bridge}")

    for cg in record.cgroups:
        _remove_cgroup_tree(Path(cg))
        if Path(cg).exists():
            left.append(f"cgroup {cg}")

    for name, value in record.sysctls.items():
        if _read_sysctl(name) != value:
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / name).write_text(value)

    if record.run_dir:
        shutil.rmtree(record.run_dir, ignore_errors=True)
    if not left:
        record_path.unlink(missing_ok=True)
        if record.mount_root:
            # Nothing is mounted there any more: containerd's snapshots and the kubelet's volumes go.
            shutil.rmtree(Path(record.mount_root), ignore_errors=True)
    return left


def leftovers(record_path: Path) -> dict[str, Any]:
    """What a test checks after teardown: does anything the node made still exist?"""
    return {
        "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(),
        "cgroups": sorted(
            str(p / CGROUP_ROOT.lstrip("/"))
            for p in CGROUP_FS.iterdir()
            if (p / CGROUP_ROOT.lstrip("/")).exists()
        ),
        "record": record_path.exists(),
    }
