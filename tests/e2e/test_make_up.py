"""`make up` as a newcomer runs it: the whole system comes up, serves a chat completion
through the openai SDK, and Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from openai import OpenAI

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _our_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.mark.timeout(420)
def test_make_up_serves_the_sample_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = _free_port()
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
        deadline = time.monotonic() + 300
        while not (state / "ready").exists():
            assert proc.poll() is None, f"make up exited early:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"make up not ready:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        printed = log.read_text()
        assert "sample   True    2/2" in printed, printed  # kubectl get xrouters, as printed
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
    assert _our_processes("run --namespace default --log-format json --metrics-port 0") == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the router still listens after Ctrl-C"
