"""`make up`: the whole system on one machine, stopped by Ctrl-C.

Starts the local control plane with the real node ``xrouter-node`` (or uses the cluster whose
kubeconfig ``XROUTER_KUBECONFIG`` names), loads our images into the node's containerd, installs the
operator as a pod with the chart (its image, its RBAC), runs Redis and PostgreSQL as pods, applies
the sample XRouter with ``localhost/xrouter:dev`` and waits until its 2 router pods are Ready, then
port-forwards ``http://127.0.0.1:8080`` to the router Service and prints curl and openai examples.
Ctrl-C removes everything (the real node's host changes included).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from xrouter_dev import procs
from xrouter_dev import stack as xstack
from xrouter_dev.cluster import ExistingCluster, LocalCluster
from xrouter_dev.tools import tools_bin

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "config" / "samples" / "xrouter.yaml"


class Cluster(Protocol):
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]: ...


def say(msg: str) -> None:
    print(f"[up] {msg}", flush=True)


def _get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"router exited with {proc.returncode} before answering {url}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"router did not answer {url} within {timeout:.0f}s")


@contextlib.contextmanager
def process(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        procs.stop(proc, group=True)


def examples(host: str, port: int, model: str, key_hint: str) -> str:
    base = f"http://{host}:{port}/v1"
    return f"""
  curl {base}/chat/completions \\
    -H "Authorization: Bearer {key_hint}" -H 'Content-Type: application/json' \\
    -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "hello"}}]}}'

  .venv/bin/python - <<'EOF'
  from openai import OpenAI
  client = OpenAI(base_url="{base}", api_key="{key_hint}")
  reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "hello"}}])
  print(reply.choices[0].message.content)
  EOF
"""


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    state = Path(args.dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    existing = os.environ.get("XROUTER_KUBECONFIG")
    cluster: ExistingCluster | LocalCluster
    ns = args.namespace
    if existing:
        say(f"using the cluster in {existing} (its nodes must have the localhost/xrouter*:dev images)")
        cluster = ExistingCluster(Path(existing))
    else:
        say("starting the local control plane, kwok's fake nodes and the real node xrouter-node")
        local = stack.enter_context(LocalCluster(state / "cluster", remove_workdir=True, real_node=True))
        assert local.real_node is not None
        say("loading our images into the node's containerd (make images built them)")
        local.real_node.load_images(only=["router", "operator", "redis", "postgres"])
        cluster = local
    if ns != "default":
        cluster.kubectl("create", "namespace", ns, check=False)

    say("installing the operator as a pod (charts/xrouter: its image, its RBAC)")
    xstack.install_operator(
        cluster, f"{ns}-xrouter-system" if ns != "default" else "xrouter-system", "xrouter"
    )
    say("starting Redis and PostgreSQL pods")
    objs = xstack.data_services(ns)
    cluster.kubectl(
        "apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
    )
    xstack.wait_rollouts(cluster, ns, ["redis", "postgres"])

    say(f"applying {SAMPLE.relative_to(REPO)} (image localhost/xrouter:dev, real node) to namespace {ns}")
    sample = xstack.sample_on_real_node(ns)
    cluster.kubectl(
        "apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": sample})
    )  # fmt: skip
    name = "sample"
    xs = xstack.Stack(cluster, ns, "xrouter-system", name=name)
    took = xstack.wait_ready(xs, 2, args.timeout)
    say(f"XRouter Ready with 2 router pods on the real node in {took:.1f}s")

    say(f"port-forwarding http://{args.host}:{args.port} to service/{name} ({state / 'port-forward.log'})")
    forward = stack.enter_context(
        process(
            [
                str(tools_bin("kubectl")),
                f"--kubeconfig={cluster.kubeconfig}",
                "port-forward",
                "-n",
                ns,
                f"service/{name}",
                f"{args.port}:80",
                f"--address={args.host}",
            ],
            state / "port-forward.log",
        )
    )
    wait_http(f"http://{args.host}:{args.port}/ready", 60, forward)

    config_map = _get_json(cluster, "configmap", f"{name}-config", "-n", ns)
    model = json.loads(config_map["data"]["config.json"])["models"][0]["name"]
    xr = cluster.kubectl("get", "-n", ns, "xrouters").stdout
    pods = cluster.kubectl("get", "-n", ns, "pods", "-o", "wide").stdout
    admin_secret = f"{name}-admin-key"  # the operator's naming: <xrouter>-admin-key
    print(
        f"""
XRouter is up.

{xr}
{pods}
Router:     http://{args.host}:{args.port}   (/health, /ready, /metrics; port-forward to service/{name})
Kubeconfig: {cluster.kubeconfig}   (kubectl get nodes -o wide: xrouter-node, containerd://)
API key:    the sample declares team-a in Secret xrouter-sample-keys ({SAMPLE.relative_to(REPO)})
Admin key:  kubectl -n {ns} get secret {admin_secret} -o jsonpath='{{.data.admin-key}}' | base64 -d
{examples(args.host, args.port, model, "sk-sample-team-a-change-me")}
Ctrl-C stops everything this started.
""",
        flush=True,
    )
    (state / "ready").write_text(f"http://{args.host}:{args.port}\n")

    while True:
        if forward.poll() is not None:
            say(f"the port-forward exited ({forward.returncode}); stopping")
            return 1
        if isinstance(cluster, LocalCluster) and cluster.dead_components():
            say(f"{cluster.dead_components()[0].name} exited; stopping")
            return 1
        time.sleep(0.5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make up", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--dir",
        default=os.environ.get("XROUTER_UP_DIR", str(REPO / ".up")),
        help="state, logs and the local cluster's data",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("XROUTER_UP_PORT", "8080")))
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM both unwind the ExitStack, which stops everything in reverse order.
    # SIGINT too, explicitly: Python raises KeyboardInterrupt only if SIGINT was not ignored when
    # it started, and a script's background job (`cmd &` in a shell without job control, as
    # CI runners and nohup wrappers start things) inherits SIGINT ignored.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    with contextlib.ExitStack() as stack:
        try:
            return run(args, stack)
        except KeyboardInterrupt:
            say("stopping")
            return 0
        finally:
            with contextlib.suppress(FileNotFoundError):
                (Path(args.dir) / "ready").unlink()


if __name__ == "__main__":
    sys.exit(main())
