"""``xrouter-operator``: run the operator, render manifests offline, print the CRD or RBAC."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .models import KIND


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(str, _str_presenter)


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """Manifests as a multi-document YAML stream (multi-line strings as blocks)."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=120)


def render_file(path: str, namespace: str | None, monitoring: bool, admin_key: str | None) -> str:
    from .naming import ADMIN_KEY_FIELD, admin_secret_name
    from .render import RenderInputs, parse, render

    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    out: list[dict[str, Any]] = []
    found = 0
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            continue
        found += 1
        doc = dict(doc)
        meta = dict(doc.get("metadata") or {})
        meta["namespace"] = namespace or meta.get("namespace") or "default"
        doc["metadata"] = meta
        inputs = RenderInputs(
            admin_key=admin_key,
            monitoring_kinds=frozenset({"ServiceMonitor", "PrometheusRule"}) if monitoring else frozenset(),
        )
        xr = parse(doc)
        out.extend(render(xr, inputs))
        if admin_key is None:
            secret = admin_secret_name(xr.metadata.name)
            print(
                f"note: {xr.metadata.namespace}/{xr.metadata.name}: no --admin-key, so the Secret {secret} "
                f"is not rendered; the pods wait for it. Create it with a key only you know:\n"
                f"  kubectl -n {xr.metadata.namespace} create secret generic {secret} "
                f'--from-literal={ADMIN_KEY_FIELD}="$(openssl rand -base64 32)"',
                file=sys.stderr,
            )
    if not found:
        raise ValueError(f"{path}: no {KIND} object found")
    return to_yaml(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xrouter-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument(
        "--metrics-port", type=int, default=8080, help="Prometheus metrics on this port (0: off)"
    )
    run.add_argument("--health-port", type=int, default=8081, help="liveness endpoint /healthz on this port")
    run.add_argument("--resync-seconds", type=float, default=300.0, help="re-check every XRouter this often")
    run.add_argument("--log-format", choices=["json", "plain"], default="json")
    run.add_argument("--verbose", "-v", action="store_true")

    rend = sub.add_parser(
        "render", help="print the manifests for XRouter objects in a file, like helm template"
    )
    rend.add_argument("-f", "--filename", required=True, help="YAML file with XRouter objects ('-': stdin)")
    rend.add_argument("--namespace", "-n", help="namespace for objects that name none (default: default)")
    rend.add_argument(
        "--with-monitoring", action="store_true", help="as if the Prometheus operator CRDs exist"
    )
    rend.add_argument(
        "--admin-key",
        help="admin key to put in the NAME-admin-key Secret (default: no Secret is rendered; "
        "create it yourself with a key only you know)",
    )

    sub.add_parser("crd", help="print the CustomResourceDefinition")
    sub.add_parser("rbac", help="print the ClusterRole the operator needs")

    args = parser.parse_args(argv)
    if args.command == "crd":
        from .crd import crd_yaml

        sys.stdout.write(crd_yaml())
        return 0
    if args.command == "rbac":
        from .rbac import role_yaml

        sys.stdout.write(role_yaml())
        return 0
    if args.command == "render":
        from .render import RenderError

        try:
            sys.stdout.write(render_file(args.filename, args.namespace, args.with_monitoring, args.admin_key))
        except (RenderError, ValueError, OSError, yaml.YAMLError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    from .runner import run_operator

    if not args.namespace and not args.all_namespaces:
        parser.error("run: give --namespace NS (repeatable) or --all-namespaces")
    return run_operator(
        namespaces=args.namespace,
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        resync_seconds=args.resync_seconds,
        json_logs=args.log_format == "json",
        verbose=args.verbose,
    )


if __name__ == "__main__":
    raise SystemExit(main())
