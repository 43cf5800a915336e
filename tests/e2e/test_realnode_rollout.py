"""Canary and blue-green rollouts of real router pods on the real node, analysed by the operator
(its image, in its own namespace) from the pods' own /metrics, while a client on the host sends requests
through the Service the whole time.

A good config-only change (a new model) is promoted through every step; a config whose only
route points at a provider answering 500 is rolled back on its own, and the client requests
that failed meanwhile are counted and bounded. The same two cases with blue-green, where a
second client tests the preview Service. Status and events show every step.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from openai import OpenAI
from xrouter_dev.cluster import LocalCluster
from xrouter_dev.realnode import RealNode
from xrouter_dev.stack import TEAM_KEY, Cluster, Stack, deploy, get_json, remove
from xrouter_dev.waiting import eventually

FIGURES: dict[str, Any] = {}
STEPS = [
    {"weight": 25, "pauseSeconds": 10},
    {"weight": 50, "pauseSeconds": 10},
    {"weight": 75, "pauseSeconds": 10},
]
MIN_REQUESTS = 20
INTERVAL = 2
# After the verdict: the canary pod's endpoint is dropped and its keep-alive connections end
# within its preStop sleep (5 s) plus the router's own drain; 10 s covers both.
TEARDOWN_SECONDS = 10
MODEL = {"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "gpt-4o-mini"}]}


@dataclass
class Load:
    """A client on the host: one request after another through the Service, every outcome counted."""

    client: OpenAI
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "c"}]
                )
                self.ok += 1
            except Exception as e:  # counted: this is what the tests measure
                self.failed += 1
                self.errors.append(f"{type(e).__name__}: {e}"[:200])
            time.sleep(0.02)

    def snapshot(self) -> tuple[int, int]:
        return self.ok, self.failed


@pytest.fixture(scope="module")
def stack(cluster: Cluster) -> Iterator[Stack]:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("deploys onto the local launcher's real node")
    node: RealNode = cluster.start_real_node()
    node.load_images()
    suffix = uuid.uuid4().hex[:6]
    ns, op_ns = f"canary-{suffix}", f"canary-op-{suffix}"
    cluster.kubectl("create", "namespace", ns)
    try:
        yield deploy(cluster, ns, op_ns)
    finally:
        print("\ncanary figures: " + json.dumps(FIGURES, indent=1))
        remove(cluster, op_ns, ns)


def start_load(ip: str) -> tuple[Load, threading.Thread]:
    # A new connection per request, as many independent clients would make: kube-proxy picks a
    # pod per connection, and one kept-alive connection would stay on one pod for good.
    http = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)
    client = OpenAI(base_url=f"http://{ip}/v1", api_key=TEAM_KEY, max_retries=0, timeout=10, http_client=http)
    lo = Load(client)
    t = threading.Thread(target=lo.run, daemon=True)
    t.start()
    return lo, t


@pytest.fixture(scope="module")
def load(stack: Stack) -> Iterator[Load]:
    lo, t = start_load(stack.service_ip())
    yield lo
    lo.stop.set()
    t.join(15)


def rollout(stack: Stack) -> dict[str, Any]:
    return dict(stack.status().get("rollout") or {})


def events(stack: Stack) -> list[tuple[str, str]]:
    selector = f"involvedObject.name={stack.name},involvedObject.kind=XRouter"
    items = get_json(stack.cluster, "-n", stack.namespace, "events", "--field-selector", selector)["items"]
    return [(e["reason"], e["message"]) for e in items]


def canary_spec(stack: Stack, **extra: Any) -> dict[str, Any]:
    allow = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": stack.operator_namespace}}}
    ]
    return {
        "spec": {
            "rollout": {
                "strategy": "canary",
                "canary": {"steps": STEPS},
                "analysis": {"minRequests": MIN_REQUESTS, "intervalSeconds": INTERVAL},
            },
            # The operator reads the pods' /metrics from its own namespace.
            "networkPolicy": {"allowMetricsFrom": allow},
            **extra,
        }
    }


def promoted(stack: Stack, timeout: float = 300) -> tuple[list[tuple[Any, ...]], float]:
    seen: list[tuple[Any, ...]] = []
    t0 = time.monotonic()

    def done() -> bool:
        ro = rollout(stack)
        row = (ro.get("phase"), ro.get("step"), ro.get("weight"), ro.get("verdict"))
        if not seen or seen[-1] != row:
            seen.append(row)
        return (
            ro.get("phase") == "Promoted" and ro.get("revision") == ro.get("stableRevision") and len(seen) > 1
        )

    try:
        eventually("the rollout promoted", done, timeout, every=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; seen {seen}\n{diagnose(stack)}") from None
    return seen, time.monotonic() - t0


def diagnose(stack: Stack) -> str:
    """What a failed wait shows: the XRouter's status, the Deployments, the operator's log."""
    k = stack.cluster.kubectl
    out = [json.dumps(stack.status(), indent=1)[:4000]]
    out.append(k("get", "deploy,pods,cm", "-n", stack.namespace, "-o", "wide", check=False).stdout)
    out.append(k("logs", "-n", stack.operator_namespace, "-l", "app.kubernetes.io/name=xrouter-operator",
                 "--tail=60", check=False).stdout)  # fmt: skip
    out.append(str(events(stack)[-15:]))
    return "\n".join(out)


@pytest.mark.timeout(900)
def test_a_good_config_change_is_promoted_through_every_step(stack: Stack, load: Load) -> None:
    # Switching to the canary strategy is itself a new pod template (the config gets its
    # versioned ConfigMap): it goes through the steps, with the client's traffic as evidence.
    stack.patch(canary_spec(stack))
    seen, took = promoted(stack)
    FIGURES["switch to canary: promoted"] = {"seconds": round(took, 1), "steps seen": seen}

    before = load.snapshot()
    stack.patch({"spec": {"models": [MODEL, {**MODEL, "name": "gpt-4o"}]}})
    seen, took = promoted(stack)
    ok, failed = (a - b for a, b in zip(load.snapshot(), before, strict=True))
    FIGURES["good config change"] = {
        "seconds": round(took, 1),
        "ok": ok,
        "failed": failed,
        "steps seen": seen,
    }
    progressing = [(s, w) for phase, s, w, _ in seen if phase == "Progressing"]
    assert {s for s, _ in progressing} == {1, 2, 3}, seen
    assert max(w or 0 for _, w in progressing) >= 50, seen
    reasons = [r for r, _ in events(stack)]
    assert reasons.count("CanaryStepPassed") >= 3 + 3 and reasons.count("RolloutPromoted") >= 2, reasons
    assert failed == 0, load.errors[-5:]
    models = load.client.models.list()
    assert {m.id for m in models.data} == {"gpt-4o-mini", "gpt-4o"}
    assert not get_json(stack.cluster, "-n", stack.namespace, "deployments", "-l",
                        "xrouter.io/track=canary")["items"]  # fmt: skip


@pytest.mark.timeout(600)
def test_a_config_whose_route_fails_is_rolled_back(stack: Stack, load: Load) -> None:
    if rollout(stack).get("phase") != "Promoted":
        stack.patch(canary_spec(stack))
        promoted(stack)
    before = load.snapshot()
    t0 = time.monotonic()
    stack.patch(
        {"spec": {"models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "fail"}]}]}}
    )

    def aborted() -> bool:
        return rollout(stack).get("phase") == "Aborted"

    try:
        eventually("the canary rolled back", aborted, 240, every=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(stack)}") from None
    took = time.monotonic() - t0
    time.sleep(TEARDOWN_SECONDS)
    ok, failed = (a - b for a, b in zip(load.snapshot(), before, strict=True))
    rate = (ok + failed) / (time.monotonic() - t0)
    # The bound: the canary requests the verdict needs, plus the canary's share (1 pod of 3)
    # of the traffic during one analysis interval and the teardown.
    bound = MIN_REQUESTS + math.ceil(rate / 3 * (INTERVAL + TEARDOWN_SECONDS))
    ro = rollout(stack)
    FIGURES["bad config change"] = {
        "seconds to rollback": round(took, 1), "ok": ok, "failed": failed, "bound": bound,
        "requests/s": round(rate, 1), "reason": ro.get("reason"),
    }  # fmt: skip
    assert ro["verdict"] == "Failed" and "error rate" in ro["reason"], ro
    degraded = next(c for c in stack.status()["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RolloutAborted")
    assert "RolloutAborted" in {r for r, _ in events(stack)}
    assert 0 < failed <= bound, (failed, bound)
    # Rolled back: every request succeeds again, and no canary is left.
    after = load.snapshot()
    time.sleep(5)
    assert load.snapshot()[1] == after[1], load.errors[-5:]
    assert not get_json(stack.cluster, "-n", stack.namespace, "deployments", "-l",
                        "xrouter.io/track=canary")["items"]  # fmt: skip


BLUE_GREEN = {"previewSeconds": 10, "scaleDownDelaySeconds": 10}


def blue_green_spec(stack: Stack, **extra: Any) -> dict[str, Any]:
    spec = canary_spec(stack, **extra)
    spec["spec"]["rollout"] = {
        "strategy": "blueGreen",
        "blueGreen": BLUE_GREEN,
        "analysis": {"minRequests": MIN_REQUESTS, "intervalSeconds": INTERVAL},
    }
    return spec


def preview_load(stack: Stack) -> tuple[Load, threading.Thread]:
    """A tester's client on the preview Service, once it exists."""

    def ip() -> str:
        r = stack.cluster.kubectl("get", "service", f"{stack.name}-preview", "-n", stack.namespace,
                                  "-o", "jsonpath={.spec.clusterIP}", check=False)  # fmt: skip
        return r.stdout.strip() if r.returncode == 0 else ""

    return start_load(eventually("the preview Service", ip, 120, every=0.5))


def service_revision(stack: Stack) -> str | None:
    svc = get_json(stack.cluster, "-n", stack.namespace, f"service/{stack.name}")
    return svc["spec"]["selector"].get("xrouter.io/revision")


@pytest.mark.timeout(600)
def test_blue_green_good_change_switches_after_the_preview(stack: Stack, load: Load) -> None:
    # Back to a good config, then blue-green (a switch of strategy rolls plainly; the Service
    # then selects the revision every pod carries).
    stack.patch(blue_green_spec(stack, models=[MODEL]))
    eventually("the Service selecting a revision", lambda: service_revision(stack), 240, every=1)
    old = service_revision(stack)

    before = load.snapshot()
    t0 = time.monotonic()
    stack.patch({"spec": {"models": [MODEL, {**MODEL, "name": "gpt-4.1"}]}})
    tester, thread = preview_load(stack)
    try:
        seen, _ = promoted(stack)
    finally:
        tester.stop.set()
        thread.join(15)
    took = time.monotonic() - t0
    ok, failed = (a - b for a, b in zip(load.snapshot(), before, strict=True))
    FIGURES["blue-green good change"] = {
        "seconds": round(took, 1), "ok": ok, "failed": failed, "preview ok": tester.ok,
        "preview failed": tester.failed, "phases seen": seen,
    }  # fmt: skip
    phases = [phase for phase, *_ in seen]
    assert "Progressing" in phases and "Promoting" in phases and phases[-1] == "Promoted", seen
    assert service_revision(stack) not in (None, old)
    reasons = {r for r, _ in events(stack)}
    assert {"BlueGreenPreview", "BlueGreenSwitched", "BlueGreenScaleDown", "RolloutPromoted"} <= reasons
    assert failed == 0, load.errors[-5:]
    # (The tester's early requests may find no ready preview pod yet; what it got is in FIGURES.)
    assert tester.ok >= MIN_REQUESTS
    assert {m.id for m in load.client.models.list().data} == {"gpt-4o-mini", "gpt-4.1"}


@pytest.mark.timeout(600)
def test_blue_green_bad_change_never_reaches_the_service(stack: Stack, load: Load) -> None:
    if rollout(stack).get("phase") != "Promoted" or not service_revision(stack):
        pytest.skip("needs the blue-green stack of the test before")
    old = service_revision(stack)
    before = load.snapshot()
    t0 = time.monotonic()
    stack.patch(
        {"spec": {"models": [{"name": "gpt-4o-mini", "targets": [{"provider": "fake", "model": "fail"}]}]}}
    )
    tester, thread = preview_load(stack)
    try:
        eventually("the preview dropped", lambda: rollout(stack).get("phase") == "Aborted", 240, every=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{diagnose(stack)}") from None
    finally:
        tester.stop.set()
        thread.join(15)
    took = time.monotonic() - t0
    time.sleep(3)
    ok, failed = (a - b for a, b in zip(load.snapshot(), before, strict=True))
    ro = rollout(stack)
    FIGURES["blue-green bad change"] = {
        "seconds to rollback": round(took, 1), "ok": ok, "failed": failed,
        "preview ok": tester.ok, "preview failed": tester.failed, "reason": ro.get("reason"),
    }  # fmt: skip
    assert ro["verdict"] == "Failed" and "error rate" in ro["reason"], ro
    assert service_revision(stack) == old
    assert failed == 0, load.errors[-5:]  # the Service never switched: no client saw the bad version
    assert tester.failed >= MIN_REQUESTS
    gone = stack.cluster.kubectl("get", "deployment,service", f"{stack.name}-preview", "-n", stack.namespace,
                                 "--ignore-not-found", "-o", "name").stdout  # fmt: skip
    assert not gone.strip(), gone
