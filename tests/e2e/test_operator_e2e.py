"""The operator against the real control plane (kwok fakes the pods).

Each test starts `xrouter-operator run --namespace <ns>` as a subprocess with the
cluster's kubeconfig. Real status objects seen along the way are judged by the Argo CD
health check as they are seen; with XROUTER_UPDATE_FIXTURES=1 they are also saved under
tests/fixtures/status/, which the packaging tests read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from xrouter_dev import procs
from xrouter_dev.argocd import health
from xrouter_dev.tools import free_port
from xrouter_dev.waiting import eventually

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "config" / "samples" / "xrouter.yaml"
CRD = ROOT / "crds" / "xrouter.io_xrouters.yaml"
ROLE = ROOT / "config" / "rbac" / "role.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "status"
OPERATOR = Path(sys.executable).parent / "xrouter-operator"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_AGENTS = ("xrouter-operator", "kopf")


@dataclass
class Operator:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def writes(self) -> float:
        return self._sum("xrouter_operator_api_writes_total{")

    def reconciles(self) -> float:
        return self._sum("xrouter_operator_reconciles_total{")

    def _sum(self, prefix: str) -> float:
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        )
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def stop(self) -> None:
        procs.stop(self.proc)


class Env:
    """kubectl helpers bound to one namespace."""

    def __init__(self, cluster: Any, namespace: str, tmp: Path) -> None:
        self.cluster = cluster
        self.ns = namespace
        self.tmp = tmp

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result: subprocess.CompletedProcess[str] = self.cluster.kubectl(
            "-n", self.ns, *args, input=input, check=check
        )
        return result

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        r = self.kubectl("get", kind, name, "-o", "json", "--ignore-not-found", check=False)
        if r.returncode != 0 or not r.stdout.strip():
            return None
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def apply(self, manifest: dict[str, Any] | str) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        self.kubectl("apply", "-f", "-", input=text)

    def start_operator(self, kubeconfig: Path | None = None, *extra: str) -> Operator:
        metrics_port, health_port = free_port(), free_port()
        log = self.tmp / f"operator-{metrics_port}.log"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.cluster.kubeconfig)}
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [
                    str(OPERATOR),
                    "run",
                    "--namespace",
                    self.ns,
                    "--metrics-port",
                    str(metrics_port),
                    "--health-port",
                    str(health_port),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        op = Operator(proc, metrics_port, log)

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"operator exited:\n{log.read_text()[-3000:]}")
            try:
                return (
                    urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=1).status == 200
                )
            except OSError:
                return False

        eventually("the operator's liveness endpoint", healthy, timeout=30)
        return op

    def xr(self, name: str = "sample") -> dict[str, Any]:
        obj = self.get("xrouter", name)
        assert obj is not None
        return obj

    def condition(self, type_: str, name: str = "sample") -> dict[str, Any]:
        for c in self.xr(name).get("status", {}).get("conditions", []):
            if c["type"] == type_:
                return dict(c)
        return {}

    def ready(self, name: str = "sample", replicas: int = 2) -> bool:
        """Ready with every pod serving and the rollout finished (Ready alone stays True
        while old pods serve during a roll)."""
        obj = self.xr(name)
        st = obj.get("status", {})
        return (
            st.get("observedGeneration") == obj["metadata"]["generation"]
            and self.condition("Ready", name).get("status") == "True"
            and self.condition("Progressing", name).get("status") == "False"
            and st.get("replicaSummary") == f"{replicas}/{replicas}"
        )

    def save(self, fixture: str, name: str = "sample", *, best_effort: bool = False) -> None:
        """Judge the live object with the Argo CD health check (the fixture's prefix names the
        expected health). best_effort: the object may have moved on since the caller looked."""
        obj = self.xr(name)
        obj["metadata"].pop("managedFields", None)
        expected = {
            "healthy": "Healthy",
            "progressing": "Progressing",
            "degraded": "Degraded",
            "suspended": "Suspended",
        }[fixture.split("-", 1)[0]]
        verdict = health(obj)["status"]
        if best_effort and verdict != expected:
            return
        assert verdict == expected, (fixture, obj.get("status"))
        if os.environ.get("XROUTER_UPDATE_FIXTURES"):
            FIXTURES.mkdir(parents=True, exist_ok=True)
            (FIXTURES / f"{fixture}.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sample_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d]


def argo_sample() -> str:
    """The sample as Argo CD applies it: with its tracking label and annotation on the XRouter."""
    docs = sample_docs()
    for d in docs:
        if d["kind"] == "XRouter":
            d["metadata"]["labels"] = {"app.kubernetes.io/instance": "xrouter-sample"}
            d["metadata"]["annotations"] = {
                "argocd.argoproj.io/tracking-id": "xrouter-sample:xrouter.io/XRouter"
            }
    return yaml.safe_dump_all(docs)


def sample_xr(**spec: Any) -> dict[str, Any]:
    xr = next(d for d in sample_docs() if d["kind"] == "XRouter")
    xr["spec"].update(spec)
    return xr


@pytest.fixture(scope="session")
def crd(cluster: Any) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))

    # Not `kubectl wait`: right after an apply the CRD may have no conditions yet, which
    # kubectl wait reports as an error instead of waiting.
    def established() -> bool:
        r = cluster.kubectl(
            "get", "crd/xrouters.xrouter.io", "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}', check=False,
        )  # fmt: skip
        return bool(r.returncode == 0 and r.stdout.strip() == "True")

    eventually("the XRouter CRD Established", established, timeout=30)


@pytest.fixture
def env(cluster: Any, namespace: str, crd: None, tmp_path: Path) -> Iterator[Env]:
    e = Env(cluster, namespace, tmp_path)
    yield e


@pytest.fixture
def operator(env: Env) -> Iterator[Operator]:
    op = env.start_operator()
    yield op
    op.stop()


def operator_audit_writes(cluster: Any, namespace: str, since: str) -> list[dict[str, Any]]:
    """Write requests by the operator (by user agent) in the namespace, logged after `since`."""
    out = []
    if cluster.audit_log is None:
        return out
    for line in Path(cluster.audit_log).read_text().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if (
            ev.get("stage") == "ResponseComplete"
            and ev.get("verb") in WRITE_VERBS
            and str(ev.get("userAgent", "")).startswith(OPERATOR_AGENTS)
            and (ev.get("objectRef") or {}).get("namespace") == namespace
            and ev.get("requestReceivedTimestamp", "") >= since
        ):
            out.append(ev)
    return out


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


# ---------------------------------------------------------------------------- tests


def test_sample_ready_drift_undone_and_quiet(env: Env, operator: Operator, cluster: Any) -> None:
    started, test_start = time.monotonic(), now_rfc3339()
    env.apply(argo_sample())
    saved: list[bool] = []

    def ready_saving_progress() -> bool:
        if not saved and env.condition("Progressing").get("status") == "True":
            env.save("progressing-rollout", best_effort=True)  # kwok may be faster than this poll
            saved.append(True)
        return env.ready()

    eventually("Ready 2/2", ready_saving_progress, timeout=30)
    took = time.monotonic() - started
    print(f"sample Ready 2/2 after {took:.1f}s")
    env.save("healthy-ready")
    row = env.kubectl("get", "xrouters", "--no-headers").stdout.split()
    assert row[:3] == ["sample", "True", "2/2"], row

    xr = env.xr()
    uid = xr["metadata"]["uid"]
    assert not xr["metadata"].get("finalizers")
    for kind, name in [
        ("serviceaccount", "sample"), ("secret", "sample-admin-key"), ("configmap", "sample-config"),
        ("service", "sample"), ("deployment", "sample"), ("poddisruptionbudget", "sample"),
        ("networkpolicy", "sample"),
    ]:  # fmt: skip
        obj = env.get(kind, name)
        assert obj is not None, f"{kind}/{name} missing"
        refs = obj["metadata"].get("ownerReferences", [])
        assert [(r["uid"], r["controller"]) for r in refs] == [(uid, True)], f"{kind}/{name}"
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "xrouter-operator"
        assert labels["xrouter.io/instance"] == "sample"
        assert "kubectl.kubernetes.io/last-applied-configuration" not in obj["metadata"].get(
            "annotations", {}
        )
    # Secrets never in the ConfigMap.
    config = env.get("configmap", "sample-config")
    assert config is not None and "sk-sample" not in json.dumps(config)

    # Manual scale is undone.
    env.kubectl("scale", "deployment/sample", "--replicas=5")
    t0 = time.monotonic()
    eventually(
        "replicas back to 2", lambda: (env.get("deployment", "sample") or {})["spec"]["replicas"] == 2, 10
    )
    print(f"manual scale undone in {time.monotonic() - t0:.1f}s")
    # A deleted Service is put back.
    old_uid = (env.get("service", "sample") or {})["metadata"]["uid"]
    env.kubectl("delete", "service", "sample", "--wait=true")
    t0 = time.monotonic()
    eventually(
        "the Service recreated",
        lambda: (env.get("service", "sample") or {}).get("metadata", {}).get("uid", old_uid) != old_uid,
        10,
    )
    print(f"deleted Service recreated in {time.monotonic() - t0:.1f}s")
    eventually("Ready 2/2 again", env.ready, timeout=30)

    # Argo CD re-sync: apply the same file twice; no new generation, no operator writes.
    time.sleep(2)
    generation = env.xr()["metadata"]["generation"]
    since, before = now_rfc3339(), operator.writes()
    env.apply(argo_sample())
    env.apply(argo_sample())
    time.sleep(3)
    assert env.xr()["metadata"]["generation"] == generation
    assert operator.writes() == before

    # A quiet minute: zero writes.
    window = float(os.environ.get("XROUTER_QUIET_SECONDS", "60"))
    time.sleep(window)
    metric_writes = operator.writes() - before
    audit = operator_audit_writes(cluster, env.ns, since)
    print(
        f"steady state over {window:.0f}s (+3s re-apply): {metric_writes:.0f} writes by the operator's "
        f"metric, {len(audit)} in the audit log"
    )
    if cluster.audit_log is not None:  # the filter does see the operator's writes
        assert operator_audit_writes(cluster, env.ns, test_start), "no operator writes found in the audit log"
    assert metric_writes == 0
    assert audit == [], [(e["verb"], e["objectRef"]) for e in audit]


def test_spec_change_rolls_pods(env: Env, operator: Operator) -> None:
    env.apply(SAMPLE.read_text())
    eventually("Ready", env.ready, timeout=30)
    dep = env.get("deployment", "sample")
    assert dep is not None
    checksum = dep["spec"]["template"]["metadata"]["annotations"]["xrouter.io/config-checksum"]
    xr = sample_xr()
    xr["spec"]["models"].append({"name": "second", "targets": [{"provider": "mock", "model": "echo2"}]})
    env.apply(xr)

    def new_checksum() -> bool:
        d = env.get("deployment", "sample") or {}
        return d["spec"]["template"]["metadata"]["annotations"]["xrouter.io/config-checksum"] != checksum

    eventually("a new config checksum", new_checksum, timeout=10)
    rs = eventually(
        "two ReplicaSets",
        lambda: len(json.loads(env.kubectl("get", "rs", "-o", "json").stdout)["items"]) >= 2,
        timeout=15,
    )
    assert rs
    saved: list[bool] = []

    def ready_saving_rollout() -> bool:
        obj = env.xr()
        progressing = env.condition("Progressing")
        if (
            not saved
            and progressing.get("reason") == "RollingOut"
            and progressing.get("observedGeneration") == obj["metadata"].get("generation")
        ):
            env.save("progressing-rollout", best_effort=True)  # kwok may finish first
            saved.append(True)
        return env.ready()

    eventually("Ready after the rollout", ready_saving_rollout, timeout=30, every=0.05)
    config = env.get("configmap", "sample-config")
    assert config is not None and "echo2" in config["data"]["config.json"]


def test_hpa_off_is_deleted_and_scale_subresource(env: Env, operator: Operator) -> None:
    env.apply(SAMPLE.read_text())
    env.apply(sample_xr(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4}))
    eventually("the HPA", lambda: env.get("hpa", "sample") is not None, timeout=15)
    env.apply(sample_xr(autoscaling={"enabled": False}))
    t0 = time.monotonic()
    eventually("the HPA deleted", lambda: env.get("hpa", "sample") is None, timeout=10)
    print(f"HPA deleted {time.monotonic() - t0:.1f}s after autoscaling was turned off")
    eventually(
        "replicas back in the Deployment",
        lambda: (env.get("deployment", "sample") or {})["spec"]["replicas"] == 2,
        10,
    )
    # With autoscaling off, `kubectl scale` works on the XRouter itself (scale subresource).
    env.kubectl("scale", "xrouter/sample", "--replicas=3")
    eventually("Ready 3/3 after kubectl scale xr", lambda: env.ready(replicas=3), timeout=20)


class DeploymentWatch:
    """Every change of one Deployment's spec.replicas and status.readyReplicas, from a
    watch (so a dip between two polls cannot be missed)."""

    def __init__(self, cluster: Any, namespace: str, name: str) -> None:
        from kubernetes import client, config, watch

        api = client.AppsV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        start = api.read_namespaced_deployment(name, namespace)
        self.seen: list[tuple[int, int]] = [(start.spec.replicas, start.status.ready_replicas or 0)]
        self._watch = watch.Watch()

        def run() -> None:
            try:
                for ev in self._watch.stream(
                    api.list_namespaced_deployment,
                    namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=start.metadata.resource_version,
                    timeout_seconds=120,
                ):
                    d = ev["object"]
                    self.seen.append((d.spec.replicas, d.status.ready_replicas or 0))
            except Exception:  # the stream ends when stopped or when the cluster goes away
                return

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._watch.stop()


def test_autoscaling_on_never_drops_ready_pods(env: Env, operator: Operator, cluster: Any) -> None:
    env.apply(SAMPLE.read_text())
    env.apply(sample_xr(replicas=3))
    eventually("Ready 3/3", lambda: env.ready(replicas=3), timeout=30)
    watcher = DeploymentWatch(cluster, env.ns, "sample")
    try:
        # Autoscaling on, and a pod template change in the same edit (so the Deployment is
        # applied at once, without replicas). minReplicas 2 < 3: the HPA has no reason to act.
        env.apply(
            sample_xr(
                replicas=3,
                autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 6},
                pods={"annotations": {"example.com/revision": "2"}},
            )
        )
        eventually("the HPA", lambda: env.get("hpa", "sample") is not None, timeout=15)

        def rolled_out_and_handed_over() -> bool:
            d = env.get("deployment", "sample") or {}
            st = d.get("status", {})
            annotations = d["spec"]["template"]["metadata"].get("annotations", {})
            managers = {
                m["manager"]
                for m in d["metadata"].get("managedFields", [])
                if "f:replicas" in (m.get("fieldsV1") or {}).get("f:spec", {})
            }
            return (
                annotations.get("example.com/revision") == "2"
                and st.get("observedGeneration") == d["metadata"]["generation"]
                and st.get("updatedReplicas") == st.get("readyReplicas") == st.get("replicas")
                and "xrouter-operator" not in managers
            )

        eventually("the rollout done and replicas handed over", rolled_out_and_handed_over, timeout=40)
        time.sleep(3)  # a late drop (the HPA's first sync) would show here
    finally:
        watcher.stop()
    replicas = [r for r, _ in watcher.seen]
    ready = [n for _, n in watcher.seen]
    print(f"while switching: spec.replicas min {min(replicas)}, ready pods min {min(ready)}, "
          f"{len(watcher.seen)} Deployment updates seen")  # fmt: skip
    assert min(replicas) == 3, watcher.seen
    assert min(ready) >= 3, watcher.seen
    assert (env.get("deployment", "sample") or {})["spec"]["replicas"] == 3


def test_scaled_to_zero_is_not_ready_and_argo_shows_suspended(env: Env, operator: Operator) -> None:
    env.apply(SAMPLE.read_text())
    eventually("Ready", env.ready, timeout=30)
    env.apply(sample_xr(replicas=0))

    def scaled_to_zero() -> bool:
        obj = env.xr()
        ready = env.condition("Ready")
        return (
            obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
            and ready.get("reason") == "ScaledToZero"
            and ready.get("status") == "False"
        )

    eventually("Ready=False ScaledToZero", scaled_to_zero, timeout=30)
    assert env.xr()["status"]["replicaSummary"] == "0/0"
    env.save("suspended-scaled-to-zero")


def test_deleted_xrouter_is_not_reconciled_again(env: Env) -> None:
    op = env.start_operator(None, "--resync-seconds", "1")
    try:
        env.apply(SAMPLE.read_text())
        eventually("Ready", env.ready, timeout=30)
        env.kubectl("delete", "xrouter", "sample", "--wait=true")
        # The garbage collector deletes the children now; their events arrive after the
        # XRouter's DELETED. Give them time, then count reconciles over five resync periods.
        t0 = time.monotonic()
        eventually("the children gone", lambda: env.get("deployment", "sample") is None, timeout=120)
        print(f"children garbage-collected {time.monotonic() - t0:.1f}s after the delete")
        time.sleep(3)
        before = op.reconciles()
        time.sleep(5)
        after = op.reconciles()
        print(f"reconciles of the deleted XRouter over 5 s (resync 1 s): {after - before:.0f}")
        assert after == before
    finally:
        op.stop()


def test_deleted_admin_key_rolls_every_pod(env: Env) -> None:
    # The operator does not watch Secrets (no list/watch on them): the resync puts the
    # admin key back. Shortened here so the test does not wait five minutes.
    op = env.start_operator(None, "--resync-seconds", "3")
    try:
        _deleted_admin_key_rolls_every_pod(env)
    finally:
        op.stop()


def _deleted_admin_key_rolls_every_pod(env: Env) -> None:
    env.apply(SAMPLE.read_text())
    eventually("Ready", env.ready, timeout=30)

    def checksum() -> str:
        d = env.get("deployment", "sample") or {}
        return str(d["spec"]["template"]["metadata"]["annotations"]["xrouter.io/config-checksum"])

    def key() -> str:
        sec = env.get("secret", "sample-admin-key") or {}
        return str((sec.get("data") or {}).get("admin-key", ""))

    old_checksum, old_key = checksum(), key()
    env.kubectl("delete", "secret", "sample-admin-key")
    eventually("a new admin key", lambda: key() not in ("", old_key), timeout=15)
    eventually("a new pod checksum", lambda: checksum() != old_checksum, timeout=15)
    eventually("Ready after the roll", env.ready, timeout=30)
    pods = json.loads(env.kubectl("get", "pods", "-l", "xrouter.io/instance=sample", "-o", "json").stdout)
    running = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    # Every running pod is from the new template: none still serves with the old key.
    assert running and all(
        p["metadata"]["annotations"]["xrouter.io/config-checksum"] == checksum() for p in running
    )
    assert old_key not in json.dumps(env.get("deployment", "sample"))


def test_suspend_stops_changes(env: Env, operator: Operator) -> None:
    env.apply(SAMPLE.read_text())
    eventually("Ready", env.ready, timeout=30)
    env.apply(sample_xr(suspend=True, replicas=3))
    eventually("Suspended", lambda: env.condition("Progressing").get("reason") == "Suspended", timeout=10)
    env.save("suspended-by-spec")
    env.kubectl("delete", "service", "sample")
    time.sleep(4)
    assert env.get("service", "sample") is None
    assert (env.get("deployment", "sample") or {})["spec"]["replicas"] == 2
    env.apply(sample_xr(suspend=False, replicas=3))
    eventually("the Service back after resume", lambda: env.get("service", "sample") is not None, timeout=10)
    eventually("Ready 3/3", lambda: env.ready(replicas=3), timeout=30)


def test_foreign_object_untouched_and_reported(env: Env, operator: Operator) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "sample", "labels": {"owner": "someone-else"}},
        "spec": {"ports": [{"port": 1234}], "selector": {"app": "other"}},
    }
    env.apply(foreign)
    before = env.get("service", "sample")
    assert before is not None
    env.apply(SAMPLE.read_text())
    eventually(
        "Degraded OwnershipConflict",
        lambda: env.condition("Degraded").get("reason") == "OwnershipConflict",
        15,
    )
    assert "Service sample" in env.condition("Degraded")["message"]
    env.save("degraded-ownership-conflict")
    eventually("the Deployment still created", lambda: env.get("deployment", "sample") is not None, 10)
    time.sleep(2)
    after = env.get("service", "sample")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not after["metadata"].get("ownerReferences")
    events = env.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=sample,reason=OwnershipConflict"
    )
    assert "OwnershipConflict" in events.stdout
    # Once the foreign object is gone, the operator takes the name and recovers.
    env.kubectl("delete", "service", "sample")
    eventually(
        "our Service and Degraded=False",
        lambda: (
            bool((env.get("service", "sample") or {}).get("metadata", {}).get("ownerReferences"))
            and env.condition("Degraded").get("status") == "False"
        ),
        timeout=40,
    )


def test_delete_with_operator_stopped(env: Env) -> None:
    op = env.start_operator()
    try:
        env.apply(SAMPLE.read_text())
        eventually("Ready", env.ready, timeout=30)
    finally:
        op.stop()
    assert not env.xr()["metadata"].get("finalizers")
    # A spec change nobody observes: the generation runs ahead of status.
    env.apply(sample_xr(replicas=3))
    xr = env.xr()
    assert xr["metadata"]["generation"] > xr["status"]["observedGeneration"]
    env.save("progressing-generation-not-observed")
    t0 = time.monotonic()
    env.kubectl("delete", "xrouter", "sample", "--timeout=20s")
    print(f"kubectl delete xrouter returned after {time.monotonic() - t0:.1f}s with the operator stopped")
    children = [("deployment", "sample"), ("service", "sample"), ("configmap", "sample-config")]
    children += [("secret", "sample-admin-key"), ("serviceaccount", "sample")]
    for kind, name in children:
        eventually(
            f"{kind}/{name} garbage-collected", lambda k=kind, n=name: env.get(k, n) is None, timeout=30
        )


MOCK_TARGET = [{"provider": "mock", "model": "e"}]
DB = {"urlSecretRef": {"name": "pg", "key": "url"}}
INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "min>max",
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
    ),
    (
        "negative weight",
        {"models": [{"name": "m", "targets": [{"provider": "mock", "model": "e", "weight": -1}]}]},
        "spec.models[0].targets[0].weight",
    ),
    (
        "duplicate provider",
        {"providers": [{"name": "mock", "type": "mock"}, {"name": "mock", "type": "mock"}]},
        "spec.providers[1]",
    ),
    (
        "unknown provider",
        {"models": [{"name": "m", "targets": [{"provider": "nope", "model": "e"}]}]},
        "spec.models[].targets[].provider",
    ),
    (
        "bad cron",
        {"database": DB, "backup": {"schedule": "every day", "storage": {"size": "1Gi"}}},
        "spec.backup.schedule",
    ),
    (
        "pvc and claim",
        {
            "database": DB,
            "backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi", "existingClaim": "c"}},
        },
        "spec.backup.storage",
    ),
    (
        "backup without database",
        {"backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}}},
        "spec.backup",
    ),
    ("openai without baseUrl", {"providers": [{"name": "mock", "type": "openai"}]}, "baseUrl"),
    (
        "baseUrl port out of range",
        {"providers": [{"name": "mock", "type": "openai", "baseUrl": "http://x:99999/v1"}]},
        "spec.providers[0].baseUrl",
    ),
    (
        "baseUrl without host",
        {"providers": [{"name": "mock", "type": "openai", "baseUrl": "http://:8000/v1"}]},
        "spec.providers[0].baseUrl",
    ),
    ("negative replicas", {"replicas": -1}, "spec.replicas"),
    (
        "unknown strategy",
        {"models": [{"name": "m", "strategy": "random", "targets": MOCK_TARGET}]},
        "spec.models[0].strategy",
    ),
    (
        "fallback to nothing",
        {"models": [{"name": "m", "fallbacks": ["ghost"], "targets": MOCK_TARGET}]},
        "spec.models[].fallbacks",
    ),
    ("unknown field", {"replica": 2}, "spec.replica"),
    (
        "operator's env name",
        {"pods": {"env": [{"name": "XR_ADMIN_KEY", "value": "mine"}]}},
        "names starting with XR_ are reserved",
    ),
    (
        "context-window fallback to nothing",
        {"models": [{"name": "m", "contextWindowFallbacks": ["ghost"], "targets": MOCK_TARGET}]},
        "spec.models[].contextWindowFallbacks must name models in spec.models",
    ),
    (
        "context-window fallback to itself",
        {"models": [{"name": "m", "contextWindowFallbacks": ["m"], "targets": MOCK_TARGET}]},
        "spec.models[].contextWindowFallbacks must not name the model itself",
    ),
    (
        "cache without ttl",
        {"models": [{"name": "m", "cache": {"scope": "shared"}, "targets": MOCK_TARGET}]},
        "spec.models[0].cache.ttlSeconds",
    ),
    (
        "budget period without budget",
        {"defaultLimits": {"budgetPeriod": "monthly"}},
        "limits.budgetPeriod daily, weekly or monthly needs limits.budgetUsd",
    ),
    (
        "telemetry endpoint without host",
        {"telemetry": {"endpoint": "http://:4318"}},
        "spec.telemetry.endpoint must be an http(s) URL",
    ),
    (
        "telemetry endpoint not http",
        {"telemetry": {"endpoint": "grpc://otel:4317"}},
        "spec.telemetry.endpoint",
    ),
    (
        "telemetry endpoint with a password",
        {"telemetry": {"endpoint": "https://user:secret@otel.example.com"}},
        "spec.telemetry.endpoint",
    ),
    (
        "telemetry sampling ratio above 1",
        {"telemetry": {"endpoint": "http://otel:4318", "samplingRatio": 2}},
        "spec.telemetry.samplingRatio",
    ),
    (
        "telemetry next to the same OTEL env",
        {
            "telemetry": {"endpoint": "http://otel:4318"},
            "pods": {"env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://mine"}]},
        },
        "OTEL_* variables set by spec.telemetry may not be set here as well",
    ),
]

# Every new field at once: the API server accepts it (the CEL rules compile within the
# cost budget, which applying the CRD already proves, and pass on a good object).
FEATURES: dict[str, Any] = {
    "models": [
        {
            "name": "small",
            "targets": MOCK_TARGET,
            "contextWindowFallbacks": ["large"],
            "cache": {"ttlSeconds": 300, "scope": "shared", "maxEntryBytes": 65536},
        },
        {"name": "large", "targets": MOCK_TARGET},
    ],
    "keys": [],
    "defaultLimits": {"budgetUsd": 10, "budgetPeriod": "weekly"},
    "telemetry": {
        "endpoint": "http://otel-collector.observability:4318",
        "samplingRatio": 0.1,
        "serviceName": "xrouter",
        "captureContent": False,
        "collector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}},
    },
}


def test_invalid_objects_rejected(env: Env) -> None:
    rejected = 0
    for label, spec, needle in INVALID:
        xr = sample_xr(**spec)
        xr["metadata"]["name"] = "bad"
        r = env.kubectl("apply", "-f", "-", input=yaml.safe_dump(xr), check=False)
        assert r.returncode != 0, f"{label}: accepted"
        assert needle in r.stderr, f"{label}: {needle!r} not in {r.stderr!r}"
        rejected += 1
    long_name = sample_xr()
    long_name["metadata"]["name"] = "x" * 41
    r = env.kubectl("apply", "-f", "-", input=yaml.safe_dump(long_name), check=False)
    assert r.returncode != 0 and "metadata.name" in r.stderr, r.stderr
    print(f"{rejected + 1} invalid XRouters rejected by the API server, each naming the field")
    good = sample_xr(**FEATURES)
    good["metadata"]["name"] = "features"
    r = env.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(good), check=False)
    assert r.returncode == 0, r.stderr


def test_render_accepted_by_server_dry_run(env: Env) -> None:
    rendered = subprocess.run(
        [str(OPERATOR), "render", "-f", str(SAMPLE), "--namespace", env.ns],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    r = env.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert r.returncode == 0, r.stderr
    assert "deployment.apps/sample created (server dry run)" in r.stdout


def test_backup_reports_last_backup(env: Env, operator: Operator) -> None:
    pv_name = f"{env.ns}-backups"
    env.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": f"/tmp/{pv_name}"},
                "claimRef": {"namespace": env.ns, "name": "backups"},
            },
        }
    )
    try:
        env.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "backups"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        )
        env.kubectl(
            "create", "secret", "generic", "pg", "--from-literal=url=postgresql://x:y@pg:5432/xrouter"
        )
        env.apply(SAMPLE.read_text())
        env.apply(
            sample_xr(
                database={"urlSecretRef": {"name": "pg", "key": "url"}},
                backup={"schedule": "* * * * *", "retention": 2, "storage": {"existingClaim": "backups"}},
            )
        )
        eventually("the backup CronJob", lambda: env.get("cronjob", "sample-backup") is not None, timeout=10)
        t0 = time.monotonic()
        eventually(
            "status.lastBackup Succeeded",
            lambda: (env.xr().get("status", {}).get("lastBackup") or {}).get("result") == "Succeeded",
            timeout=90,
            every=1,
        )
        print(f"first backup reported {time.monotonic() - t0:.0f}s after the CronJob was created")
        eventually("Ready", env.ready, timeout=30)
        env.save("healthy-last-backup")
        row = env.kubectl("get", "xrouters", "--no-headers").stdout.split()
        assert len(row) >= 6, row  # NAME READY REPLICAS ENDPOINT LAST-BACKUP AGE
        # Removing the backup section deletes the CronJob (the claim is the user's).
        env.apply(sample_xr())
        eventually("the CronJob deleted", lambda: env.get("cronjob", "sample-backup") is None, timeout=10)
        assert env.get("pvc", "backups") is not None
    finally:
        env.kubectl("delete", "pv", pv_name, "--wait=false", "--ignore-not-found", check=False)


def test_backup_claim_outlives_the_xrouter_unless_asked(env: Env, operator: Operator) -> None:
    env.kubectl("create", "secret", "generic", "pg", "--from-literal=url=postgresql://x:y@pg:5432/xrouter")
    db = {"urlSecretRef": {"name": "pg", "key": "url"}}
    backup: dict[str, Any] = {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}}
    env.apply(SAMPLE.read_text())
    env.apply(sample_xr(database=db, backup=backup))
    eventually("the backup claim", lambda: env.get("pvc", "sample-backup") is not None, timeout=15)
    pvc = env.get("pvc", "sample-backup") or {}
    assert "ownerReferences" not in pvc["metadata"], pvc["metadata"]
    env.kubectl("delete", "xrouter", "sample", "--wait=true")
    eventually("the Deployment garbage-collected", lambda: env.get("deployment", "sample") is None, 60)
    assert (env.get("pvc", "sample-backup") or {}).get("metadata", {}).get("uid") == pvc["metadata"]["uid"]
    # Re-created: the claim with the dumps is adopted, not reported as someone else's.
    env.apply(sample_xr(database=db, backup={**backup, "storage": {"size": "1Gi", "whenDeleted": "Delete"}}))
    new_uid = env.xr()["metadata"]["uid"]

    def adopted() -> bool:
        refs = (env.get("pvc", "sample-backup") or {}).get("metadata", {}).get("ownerReferences") or []
        return [r["uid"] for r in refs] == [new_uid]

    eventually("the claim adopted and owned (whenDeleted: Delete)", adopted, timeout=20)
    assert env.condition("Degraded").get("reason") != "OwnershipConflict"
    assert env.get("cronjob", "sample-backup") is not None
    env.kubectl("delete", "xrouter", "sample", "--wait=true")
    eventually("the claim garbage-collected", lambda: env.get("pvc", "sample-backup") is None, 60)


def _minimal_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def test_monitoring_only_when_crds_exist(env: Env, cluster: Any) -> None:
    crds = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}
    created = []
    for kind, plural in crds.items():
        name = f"{plural}.monitoring.coreos.com"
        if cluster.kubectl("get", "crd", name, "--ignore-not-found", "-o", "name").stdout.strip():
            continue
        cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(_minimal_crd(kind, plural)))
        created.append(name)
    try:
        for name in created:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
        op = env.start_operator()  # discovers the Prometheus kinds at start
        try:
            env.apply(SAMPLE.read_text())
            eventually(
                "the ServiceMonitor", lambda: env.get("servicemonitor", "sample") is not None, timeout=15
            )
            eventually(
                "the PrometheusRule", lambda: env.get("prometheusrule", "sample") is not None, timeout=15
            )
            sm = env.get("servicemonitor", "sample")
            assert sm is not None and sm["spec"]["endpoints"][0]["port"] == "metrics"
            env.apply(sample_xr(monitoring={"serviceMonitor": {"enabled": False}}))
            eventually(
                "the ServiceMonitor deleted", lambda: env.get("servicemonitor", "sample") is None, timeout=10
            )
            assert env.get("prometheusrule", "sample") is not None
        finally:
            op.stop()
    finally:
        for name in created:
            cluster.kubectl("delete", "crd", name, "--wait=false", check=False)


def test_operator_works_with_only_its_cluster_role(env: Env, cluster: Any) -> None:
    """Run as a ServiceAccount bound to config/rbac/role.yaml: the role is enough."""
    cluster.kubectl("apply", "-f", str(ROLE))
    env.kubectl("create", "serviceaccount", "operator")
    binding = f"xrouter-operator-{env.ns}"
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=xrouter-operator",
        f"--serviceaccount={env.ns}:operator",
    )
    try:
        token = env.kubectl("create", "token", "operator", "--duration=1h").stdout.strip()
        admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
        server = admin["clusters"][0]
        kubeconfig = env.tmp / "operator.kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [server],
                    "users": [{"name": "operator", "user": {"token": token}}],
                    "contexts": [
                        {"name": "operator", "context": {"cluster": server["name"], "user": "operator"}}
                    ],
                    "current-context": "operator",
                }
            )
        )
        op = env.start_operator(kubeconfig)
        try:
            env.apply(SAMPLE.read_text())
            env.apply(sample_xr(autoscaling={"enabled": True}))
            eventually("the HPA", lambda: env.get("hpa", "sample") is not None, timeout=15)
            env.apply(sample_xr())
            eventually("the HPA deleted", lambda: env.get("hpa", "sample") is None, timeout=10)
            eventually("Ready 2/2", env.ready, timeout=30)
            events = env.kubectl("get", "events", "--field-selector", "involvedObject.kind=XRouter").stdout
            assert "Applied" in events
        finally:
            op.stop()
        log = op.log.read_text()
        assert "forbidden" not in log.lower(), log[-3000:]
    finally:
        cluster.kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)
