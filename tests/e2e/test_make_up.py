"""`make up` as a newcomer runs it: the whole system comes up on the real node (the operator,
Redis, PostgreSQL and the sample's 2 router pods, all real containers), serves a chat completion
through the openai SDK on 127.0.0.1, and Ctrl-C removes everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from openai import OpenAI
from xrouter_dev.cluster import ExistingCluster, LocalCluster
from xrouter_dev.nodeconfig import BRIDGE, NODE_NAME, NODE_ROOT
from xrouter_dev.tools import free_port

Cluster = LocalCluster | ExistingCluster

REPO = Path(__file__).resolve().parents[2]


def _our_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.timeout(600)
def test_make_up_serves_the_sample_and_ctrl_c_stops_everything(tmp_path: Path, cluster: Cluster) -> None:
    # One real node per machine: make up's needs the session's (if a test started it) stopped.
    if isinstance(cluster, LocalCluster) and cluster.real_node is not None:
        cluster.real_node.stop()
    port = free_port()
    state = tmp_path / "up"
    env = {**os.environ, "XROUTER_UP_PORT": str(port), "XROUTER_UP_DIR": str(state)}
    env.pop("XROUTER_KUBECONFIG", None)
    log = tmp_path / "make-up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "up"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 480
        while not (state / "ready").exists():
            assert proc.poll() is None, f"make up exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"make up not ready:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        printed = log.read_text()
        assert "sample   True    2/2" in printed, printed  # kubectl get xrouters, as printed
        # The pods it printed run on the real node.
        pod_lines = [ln for ln in printed.splitlines() if ln.startswith(("sample-", "redis-", "postgres-"))]
        assert len(pod_lines) == 4 and all(NODE_NAME in ln and "Running" in ln for ln in pod_lines), printed
        assert f"http://127.0.0.1:{port}/v1/chat/completions" in printed  # the curl example

        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-sample-team-a-change-me")
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from make up"}]
        )
        assert reply.choices[0].message.content == "hello from make up"
        assert reply.usage is not None and reply.usage.total_tokens > 0
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    time.sleep(1)
    # The control plane and the router carry the state dir in their args; the operator its own flags.
    assert _our_processes(str(state)) == [], "make up left processes running"
    assert _our_processes(str(NODE_ROOT)) == [], "the real node's processes are still running"
    assert not Path(f"/sys/class/net/{BRIDGE}").exists(), "the node's bridge is still there"
    assert not NODE_ROOT.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the router still listens after Ctrl-C"
