"""`make up`: the whole system on one machine, stopped by Ctrl-C.

Starts the local control plane (or uses the cluster whose kubeconfig ``XROUTER_KUBECONFIG``
names), installs the CRD and RBAC, runs the operator, applies the sample XRouter, waits for it
to be Ready, then runs a router process on 127.0.0.1 with exactly the config the operator
rendered into the ConfigMap, and the env the operator put on the Deployment (Secrets resolved
from the cluster). Pods on the local control plane are kwok fakes, so this local router process
is the one that answers requests.
"""

from __future__ import annotations

import argparse
import base64
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
from xrouter_dev.cluster import ExistingCluster, LocalCluster

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


def router_env(cluster: Cluster, namespace: str, deployment: dict[str, Any]) -> dict[str, str]:
    """The router container's env as the kubelet would build it: literal values, and
    secretKeyRef values read from the cluster. Values are never printed."""
    env: dict[str, str] = {}
    secrets: dict[str, dict[str, str]] = {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            continue
        if ref["name"] not in secrets:
            data = _get_json(cluster, "secret", ref["name"], "-n", namespace).get("data", {})
            secrets[ref["name"]] = {k: base64.b64decode(v).decode() for k, v in data.items()}
        value = secrets[ref["name"]].get(ref["key"])
        if value is None and not ref.get("optional"):
            raise SystemExit(f"secret {ref['name']!r} has no key {ref['key']!r} (env {var['name']})")
        if value is not None:
            env[var["name"]] = value
    return env


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
    venv_bin = Path(sys.executable).parent
    existing = os.environ.get("XROUTER_KUBECONFIG")
    cluster: Cluster
    if existing:
        say(f"using the cluster in {existing}")
        cluster = ExistingCluster(Path(existing))
    else:
        say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        cluster = stack.enter_context(LocalCluster(state / "cluster", remove_workdir=True))
    kube_env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    ns = args.namespace

    say("installing the CRD and RBAC (config/crd, config/rbac)")
    cluster.kubectl("apply", "--server-side", "--field-manager=xrouter-up", "-k", str(REPO / "config/crd"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/xrouters.xrouter.io", "--timeout=60s")
    cluster.kubectl("apply", "--server-side", "--field-manager=xrouter-up", "-k", str(REPO / "config/rbac"))
    if ns != "default":
        cluster.kubectl("create", "namespace", ns, check=False)

    say(f"running the operator (logs: {state / 'operator.log'})")
    operator = stack.enter_context(
        process(
            [
                str(venv_bin / "xrouter-operator"),
                "run",
                "--namespace",
                ns,
                "--log-format",
                "json",
                "--metrics-port",
                "0",
            ],
            state / "operator.log",
            kube_env,
        )
    )

    say(f"applying {SAMPLE.relative_to(REPO)} to namespace {ns}")
    cluster.kubectl("apply", "-n", ns, "-f", str(SAMPLE))
    name = "sample"
    say("waiting for the XRouter to be Ready")
    deadline = time.monotonic() + args.timeout
    while True:
        if operator.poll() is not None:
            raise SystemExit(f"the operator exited ({operator.returncode}); see {state / 'operator.log'}")
        ready = cluster.kubectl(
            "wait", "-n", ns, f"xrouter/{name}", "--for=condition=Ready", "--timeout=5s", check=False
        )
        if ready.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise SystemExit(
                f"XRouter {ns}/{name} not Ready after {args.timeout:.0f}s:\n"
                + cluster.kubectl("get", "-n", ns, "xrouter", name, "-o", "yaml").stdout
            )

    # The router runs here with the operator's own rendering: the ConfigMap's config and the
    # Deployment's env, so what you try is what the cluster's pods would run.
    config_map = _get_json(cluster, "configmap", f"{name}-config", "-n", ns)
    deployment = _get_json(cluster, "deployment", name, "-n", ns)
    config_path = state / "config.json"
    config_path.write_text(config_map["data"]["config.json"])
    env = {**os.environ, **router_env(cluster, ns, deployment)}
    say(f"running the router on http://{args.host}:{args.port} (logs: {state / 'router.log'})")
    router = stack.enter_context(
        process(
            [
                str(venv_bin / "xrouter-router"),
                "--config",
                str(config_path),
                "--host",
                args.host,
                "--port",
                str(args.port),
            ],
            state / "router.log",
            env,
        )
    )
    wait_http(f"http://{args.host}:{args.port}/ready", 60, router)

    model = json.loads(config_map["data"]["config.json"])["models"][0]["name"]
    xr = cluster.kubectl("get", "-n", ns, "xrouters").stdout
    admin_secret = f"{name}-admin-key"  # the operator's naming: <xrouter>-admin-key
    print(
        f"""
XRouter is up.

{xr}
Router:     http://{args.host}:{args.port}   (/health, /ready, /metrics)
Kubeconfig: {cluster.kubeconfig}
API key:    the sample declares team-a in Secret xrouter-sample-keys ({SAMPLE.relative_to(REPO)})
Admin key:  kubectl -n {ns} get secret {admin_secret} -o jsonpath='{{.data.admin-key}}' | base64 -d
{examples(args.host, args.port, model, "sk-sample-team-a-change-me")}
Ctrl-C stops everything this started.
""",
        flush=True,
    )
    (state / "ready").write_text(f"http://{args.host}:{args.port}\n")

    while True:
        for proc, what in ((operator, "operator"), (router, "router")):
            if proc.poll() is not None:
                say(f"the {what} exited ({proc.returncode}); stopping")
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
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM both unwind the ExitStack, which stops everything in reverse order.
    signal.signal(signal.SIGTERM, _interrupt)
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
