"""Highly available Redis and PostgreSQL for the failover tests, on loopback: a master,
a replica and three sentinels (quorum 2); a Redis Cluster of three masters; a PostgreSQL
primary with a streaming replica. Real servers, each started and killed like the real
thing would be."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis as redis_lib
from xrouter_dev.procs import stop
from xrouter_dev.tools import free_port

from .servers import Postgres, wait_port

MASTER = "xrmaster"
DOWN_AFTER_MS = 1000  # how long a master may be silent before a sentinel calls it down


def _redis_exe() -> str:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not installed: run `make deps` (hack/install-deps.sh)")
    return exe


def _sentinel_cmd(conf: Path) -> list[str]:
    # Debian's redis-sentinel package is redis-server started in sentinel mode (a symlink
    # plus its service): without it, the same binary runs as a sentinel with --sentinel.
    exe = shutil.which("redis-sentinel")
    return [exe, str(conf)] if exe else [_redis_exe(), str(conf), "--sentinel"]


class RedisNode:
    """One redis-server (``extra`` adds its flags); killable and restartable on its port."""

    def __init__(self, workdir: Path, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.dir = workdir / f"redis-{self.port}"
        self.dir.mkdir()
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *flags: str) -> None:
        cmd = [_redis_exe(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        cmd += ["--save", "", "--appendonly", "no", *self.extra, *flags]
        log = (self.dir / "redis.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, proc=self.proc)

    def kill(self) -> None:
        """SIGKILL: the master dies without a goodbye, as a lost node would."""
        stop(self.proc, sig=signal.SIGKILL, timeout=5)

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(port=self.port, socket_timeout=2)


class SentinelSet:
    """A master, one replica and three sentinels watching it with quorum 2."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xrouter-sentinel-"))
        self.master = RedisNode(self.dir)
        self.replica = RedisNode(self.dir)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    def start(self) -> None:
        self.master.start()
        self.replica.start("--replicaof", "127.0.0.1", str(self.master.port))
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"  # a sentinel rewrites its config: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} 10000\n"
            )
            log = (self.dir / f"sentinel-{port}.log").open("ab")
            proc = subprocess.Popen(_sentinel_cmd(conf), stdout=log, stderr=subprocess.STDOUT)
            wait_port(port, proc=proc)
            self.sentinels.append(proc)
        self.wait_settled(self.master.port)

    def _state(self, port: int) -> dict[str, object]:
        info: dict[str, object] = redis_lib.Redis(port=port, socket_timeout=2).sentinel_master(MASTER)
        return info

    def wait_settled(self, master_port: int, timeout: float = 40) -> None:
        """Until every sentinel sees ``master_port`` as the master, the two other
        sentinels and one replica (they learn of each other through the master)."""
        deadline = time.monotonic() + timeout
        while True:
            states = [self._state(p) for p in self.sentinel_ports]
            if all(
                s["port"] == master_port
                and s["num-other-sentinels"] == 2
                and s["num-slaves"] == 1
                and "s_down" not in str(s["flags"])
                for s in states
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sentinels did not settle: {states}")
            time.sleep(0.2)

    def master_port(self) -> int:
        return int(self._state(self.sentinel_ports[0])["port"])  # type: ignore[call-overload]

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in sorted(self.dir.glob("*/*.log")))

    def stop(self) -> None:
        for proc in self.sentinels:
            stop(proc)
        for node in (self.master, self.replica):
            stop(node.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterSet:
    """Three masters (no replicas) forming a Redis Cluster: 16384 slots split in three."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xrouter-cluster-"))
        flags = ["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]
        self.nodes = [RedisNode(self.dir, flags) for _ in range(3)]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            # The cluster bus port defaults to port + 10000, past 65535 for a free port above
            # 55535 (redis-server then refuses to start): give it a free port of its own.
            bus = ["--cluster-port", str(free_port())]
            node.start("--cluster-config-file", str(node.dir / "nodes.conf"), *bus)
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        cli = shutil.which("redis-cli") or "redis-cli"
        subprocess.run(
            [cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        deadline = time.monotonic() + 30
        while any(n.client().cluster("info").get("cluster_state") != "ok" for n in self.nodes):
            if time.monotonic() > deadline:
                raise TimeoutError("redis cluster did not reach cluster_state:ok")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            stop(node.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresPair:
    """A primary and a streaming replica made with ``pg_basebackup -R`` (which writes the
    replica's standby.signal and primary_conninfo), each its own cluster on its own port."""

    def __init__(self) -> None:
        self.primary = Postgres()
        self.replica = Postgres(initdb=False)
        try:
            self.primary.start()
            base_backup = [str(self.primary.bin / "pg_basebackup"), "-d", self.primary.dsn()]
            self.replica._run([*base_backup, "-D", str(self.replica.data), "-R", "-X", "stream"])
            self.replica.start()
        except BaseException:
            self.stop()
            raise

    def dsn(self, db: str) -> str:
        """Both hosts; libpq's (and asyncpg's) rule picks the one that accepts writes."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.replica.port}"
        return f"postgresql://xrouter@{hosts}/{db}?target_session_attrs=read-write"

    def promote(self) -> None:
        self.replica._run([str(self.replica.bin / "pg_ctl"), "promote", "-w", "-D", str(self.replica.data)])

    def stop(self) -> None:
        for pg in (self.primary, self.replica):
            pg.stop()
            pg.cleanup()
