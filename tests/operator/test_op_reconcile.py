"""The reconcile loop against an in-memory API: creates, converges to zero writes,
undoes drift, never clobbers, prunes, honours suspend, survives bad specs."""

from __future__ import annotations

import base64
from typing import Any, cast

import pytest
from fakekube import FakeKube
from xrouter_operator.kube import Kube
from xrouter_operator.reconcile import Reconciler


def xrouter(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 2,
        "providers": [{"name": "mock", "type": "mock"}],
        "models": [{"name": "m", "targets": [{"provider": "mock", "model": "echo"}]}],
    }
    base.update(spec)
    return {
        "apiVersion": "xrouter.io/v1alpha1",
        "kind": "XRouter",
        "metadata": {
            "name": "r",
            "namespace": "ns",
            "uid": "xr-uid",
            "generation": 1,
            "labels": {"team": "a"},
        },
        "spec": base,
    }


def make(**spec: Any) -> tuple[FakeKube, Reconciler]:
    kube = FakeKube()
    kube.put(xrouter(**spec))
    keys = iter(f"key-{i}" for i in range(100))
    return kube, Reconciler(
        cast(Kube, kube), clock=lambda: "2026-01-01T00:00:00Z", new_key=lambda: next(keys)
    )


def ready_deployment(kube: FakeKube) -> None:
    dep = kube.objects[("Deployment", "ns", "r")]
    n = dep["spec"]["replicas"]
    dep["status"] = {
        "observedGeneration": dep["metadata"]["generation"],
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
    }


def cond(kube: FakeKube, type_: str) -> dict[str, Any]:
    status = kube.objects[("XRouter", "ns", "r")]["status"]
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_create_then_ready_then_zero_writes() -> None:
    kube, rec = make()
    out = rec.reconcile("ns", "r")
    assert out.result == "success"
    kinds = {k for (k, _, _) in kube.objects}
    assert {
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= kinds
    assert cond(kube, "Ready")["status"] == "False"
    assert cond(kube, "Progressing")["status"] == "True"
    ready_deployment(kube)
    rec.reconcile("ns", "r")
    assert cond(kube, "Ready")["status"] == "True"
    assert kube.objects[("XRouter", "ns", "r")]["status"]["replicaSummary"] == "2/2"
    kube.writes.clear()
    for _ in range(3):
        rec.reconcile("ns", "r")
    assert kube.writes == []
    for (kind, _, _), obj in kube.objects.items():
        if kind != "XRouter":
            assert "team" not in obj["metadata"].get("labels", {})
            assert obj["metadata"]["ownerReferences"][0]["uid"] == "xr-uid"


def test_admin_key_kept_and_rotated() -> None:
    kube, rec = make()
    rec.reconcile("ns", "r")
    secret = kube.objects[("Secret", "ns", "r-admin-key")]
    assert base64.b64decode(secret["data"]["admin-key"]) == b"key-0"
    rec.reconcile("ns", "r")
    assert base64.b64decode(kube.objects[("Secret", "ns", "r-admin-key")]["data"]["admin-key"]) == b"key-0"
    xr = kube.objects[("XRouter", "ns", "r")]
    xr["metadata"]["annotations"] = {"xrouter.io/rotate-admin-key": "now"}
    checksum = kube.objects[("Deployment", "ns", "r")]["spec"]["template"]["metadata"]["annotations"]
    rec.reconcile("ns", "r")
    assert base64.b64decode(kube.objects[("Secret", "ns", "r-admin-key")]["data"]["admin-key"]) == b"key-1"
    new = kube.objects[("Deployment", "ns", "r")]["spec"]["template"]["metadata"]["annotations"]
    assert new != checksum


def test_drift_is_undone() -> None:
    kube, rec = make()
    rec.reconcile("ns", "r")
    kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] = 5
    del kube.objects[("Service", "ns", "r")]
    kube.writes.clear()
    rec.reconcile("ns", "r")
    assert kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] == 2
    assert ("Service", "ns", "r") in kube.objects
    assert {w for w in kube.writes if w[0] == "apply"} == {
        ("apply", "Deployment", "r"),
        ("apply", "Service", "r"),
    }


def test_foreign_object_is_not_clobbered() -> None:
    kube, rec = make()
    foreign = kube.put(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "r", "namespace": "ns"}, "spec": {}}
    )
    rec.reconcile("ns", "r")
    assert kube.objects[("Service", "ns", "r")] == foreign
    degraded = cond(kube, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "OwnershipConflict"
    assert "Service r" in degraded["message"]
    assert any(e["reason"] == "OwnershipConflict" for e in kube.events)
    kube.writes.clear()
    rec.reconcile("ns", "r")
    assert kube.writes == []  # no event storm while the conflict stays


def test_hpa_turned_off_is_deleted() -> None:
    kube, rec = make(autoscaling={"enabled": True})
    rec.reconcile("ns", "r")
    assert ("HorizontalPodAutoscaler", "ns", "r") in kube.objects
    assert "replicas" not in kube.objects[("Deployment", "ns", "r")]["spec"]
    kube.objects[("XRouter", "ns", "r")]["spec"]["autoscaling"] = {"enabled": False}
    rec.reconcile("ns", "r")
    assert ("HorizontalPodAutoscaler", "ns", "r") not in kube.objects
    assert kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] == 2


def test_suspend_changes_nothing() -> None:
    kube, rec = make()
    rec.reconcile("ns", "r")
    xr = kube.objects[("XRouter", "ns", "r")]
    xr["spec"]["suspend"] = True
    xr["spec"]["replicas"] = 4
    xr["metadata"]["generation"] = 2
    del kube.objects[("Service", "ns", "r")]
    kube.writes.clear()
    out = rec.reconcile("ns", "r")
    assert out.result == "skipped"
    assert {w[0] for w in kube.writes} <= {"status", "event"}
    assert kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] == 2
    progressing = cond(kube, "Progressing")
    assert progressing["reason"] == "Suspended" and progressing["status"] == "False"


@pytest.mark.parametrize(
    "spec",
    [
        {"models": [{"name": "m", "targets": [{"provider": "ghost", "model": "x"}]}]},
        {"replicas": "many"},
        {"backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}}},
    ],
)
def test_invalid_spec_is_degraded_not_a_crash(spec: dict[str, Any]) -> None:
    kube, rec = make(**spec)
    out = rec.reconcile("ns", "r")
    assert out.result == "skipped"
    degraded = cond(kube, "Degraded")
    assert degraded["reason"] == "InvalidSpec" and "spec." in degraded["message"]
    assert not [w for w in kube.writes if w[0] == "apply"]


def test_backup_and_monitoring_children() -> None:
    kube, rec = make(
        database={"urlSecretRef": {"name": "pg", "key": "url"}},
        backup={"schedule": "0 3 * * *", "storage": {"size": "1Gi"}},
    )
    kube.monitoring = frozenset({"ServiceMonitor", "PrometheusRule"})
    rec.reconcile("ns", "r")
    assert ("CronJob", "ns", "r-backup") in kube.objects
    assert ("PersistentVolumeClaim", "ns", "r-backup") in kube.objects
    assert ("ServiceMonitor", "ns", "r") in kube.objects
    cron = kube.objects[("CronJob", "ns", "r-backup")]
    kube.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "r-backup-1",
                "namespace": "ns",
                "labels": {"xrouter.io/instance": "r", "app.kubernetes.io/component": "backup"},
                "ownerReferences": [{"uid": cron["metadata"]["uid"], "controller": True}],
            },
            "status": {
                "completionTime": "2026-01-01T03:00:10Z",
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        }
    )
    rec.reconcile("ns", "r")
    status = kube.objects[("XRouter", "ns", "r")]["status"]
    assert status["lastBackup"] == {"time": "2026-01-01T03:00:10Z", "result": "Succeeded"}
    kube.objects[("XRouter", "ns", "r")]["spec"].pop("backup")
    rec.reconcile("ns", "r")
    assert ("CronJob", "ns", "r-backup") not in kube.objects
    assert "lastBackup" not in kube.objects[("XRouter", "ns", "r")]["status"]


def test_a_failed_backup_is_one_warning_event_with_what_failed() -> None:
    kube, rec = make(
        database={"urlSecretRef": {"name": "pg", "key": "url"}},
        backup={"schedule": "0 3 * * *", "storage": {"size": "1Gi"}},
    )
    rec.reconcile("ns", "r")
    cron = kube.objects[("CronJob", "ns", "r-backup")]
    backup = {"xrouter.io/instance": "r", "app.kubernetes.io/component": "backup"}
    job = kube.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "r-backup-2",
                "namespace": "ns",
                "labels": backup,
                "ownerReferences": [{"uid": cron["metadata"]["uid"], "controller": True}],
            },
            "status": {
                "conditions": [
                    {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-02T03:01:00Z"}
                ]
            },
        }
    )
    said = "upload to s3://b/prod/ failed (s3cmd exit 77): nothing was written"
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "r-backup-2-x",
                "namespace": "ns",
                "labels": backup,
                "ownerReferences": [{"uid": job["metadata"]["uid"], "controller": True}],
            },
            "status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": said}}}]},
        }
    )
    rec.reconcile("ns", "r")
    rec.reconcile("ns", "r")  # the same failure again: no second event
    failed = [(e["type"], e["message"]) for e in kube.events if e["reason"] == "BackupFailed"]
    assert failed == [("Warning", said)]


def test_missing_secret_is_degraded_and_recovers() -> None:
    ref = {"name": "keys", "key": "a"}
    kube, rec = make(keys=[{"name": "team-a", "secretKeyRef": ref}])
    out = rec.reconcile("ns", "r")
    assert out.retry
    degraded = cond(kube, "Degraded")
    assert degraded["reason"] == "SecretMissing"
    assert degraded["message"] == "spec.keys[team-a].secretKeyRef: Secret keys not found"
    assert ("Deployment", "ns", "r") in kube.objects  # still applied: the pods wait for the Secret
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "keys", "namespace": "ns"},
            "data": {"b": ""},
        }
    )
    rec.reconcile("ns", "r")
    assert cond(kube, "Degraded")["message"] == "spec.keys[team-a].secretKeyRef: Secret keys has no key a"
    kube.objects[("Secret", "ns", "keys")]["data"]["a"] = "c2VjcmV0"
    out = rec.reconcile("ns", "r")
    assert not out.retry and cond(kube, "Degraded")["status"] == "False"
    assert "c2VjcmV0" not in str(kube.objects[("XRouter", "ns", "r")]["status"])


def test_a_deleted_admin_key_secret_rolls_the_pods() -> None:
    kube, rec = make()
    rec.reconcile("ns", "r")

    def template() -> dict[str, Any]:
        tpl: dict[str, Any] = kube.objects[("Deployment", "ns", "r")]["spec"]["template"]
        return tpl

    before = template()["metadata"]["annotations"]["xrouter.io/config-checksum"]
    del kube.objects[("Secret", "ns", "r-admin-key")]
    rec.reconcile("ns", "r")
    assert base64.b64decode(kube.objects[("Secret", "ns", "r-admin-key")]["data"]["admin-key"]) == b"key-1"
    after = template()["metadata"]["annotations"]["xrouter.io/config-checksum"]
    # A new key means new pods, so no replica keeps serving with the old key.
    assert after != before
    assert "key-1" not in str(template()) and base64.b64encode(b"key-1").decode() not in str(template())
    kube.writes.clear()
    rec.reconcile("ns", "r")
    assert kube.writes == []  # the checksum is stable while the key is


def test_missing_xrouter_is_reported_gone() -> None:
    kube, rec = make()
    del kube.objects[("XRouter", "ns", "r")]
    out = rec.reconcile("ns", "r")
    assert out.gone and out.result == "skipped" and kube.writes == []


def test_turning_autoscaling_on_keeps_the_replica_count() -> None:
    kube, rec = make(replicas=5)
    rec.reconcile("ns", "r")
    dep = ("Deployment", "ns", "r")
    assert kube.objects[dep]["spec"]["replicas"] == 5
    xr = kube.objects[("XRouter", "ns", "r")]
    xr["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 10}
    # A pod template change in the same edit, so the Deployment is applied right away.
    xr["spec"]["pods"] = {"annotations": {"example.com/rev": "2"}}
    rec.reconcile("ns", "r")
    assert kube.objects[dep]["spec"]["replicas"] == 5  # not the API's default of 1
    assert ("HorizontalPodAutoscaler", "ns", "r") in kube.objects
    # The operator no longer holds the field; the hand-over manager keeps the value ...
    assert kube.replica_owners[dep] == {"xrouter-operator-handover"}
    rec.reconcile("ns", "r")
    assert kube.objects[dep]["spec"]["replicas"] == 5
    # ... until the HPA writes it; from then on the operator never touches replicas.
    kube.hpa_scales("ns", "r", 7)
    assert kube.replica_owners[dep] == {"kube-controller-manager"}
    kube.writes.clear()
    xr["spec"]["pods"] = {"annotations": {"example.com/rev": "3"}}
    rec.reconcile("ns", "r")
    assert kube.objects[dep]["spec"]["replicas"] == 7
    assert [w for w in kube.writes if w[0] == "apply"] == [("apply", "Deployment", "r")]


def test_autoscaling_from_the_start_never_holds_replicas() -> None:
    kube, rec = make(autoscaling={"enabled": True, "minReplicas": 3, "maxReplicas": 10})
    rec.reconcile("ns", "r")
    dep = ("Deployment", "ns", "r")
    assert "xrouter-operator" not in kube.replica_owners.get(dep, set())
    kube.writes.clear()
    rec.reconcile("ns", "r")
    assert kube.writes == []  # no hand-over needed, none made


def test_turning_autoscaling_off_takes_replicas_back() -> None:
    kube, rec = make(autoscaling={"enabled": True, "minReplicas": 3, "maxReplicas": 10})
    rec.reconcile("ns", "r")
    kube.hpa_scales("ns", "r", 6)
    xr = kube.objects[("XRouter", "ns", "r")]
    xr["spec"]["autoscaling"] = {"enabled": False}
    xr["spec"]["replicas"] = 4
    rec.reconcile("ns", "r")
    assert kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] == 4
    assert ("HorizontalPodAutoscaler", "ns", "r") not in kube.objects


def test_scaled_to_zero_leaves_the_ready_gauge_out() -> None:
    from prometheus_client import REGISTRY

    kube, rec = make(replicas=0)
    rec.reconcile("ns", "r")
    ready_deployment(kube)
    rec.reconcile("ns", "r")
    assert cond(kube, "Ready")["reason"] == "ScaledToZero"
    labels = {"namespace": "ns", "name": "r"}
    assert REGISTRY.get_sample_value("xrouter_operator_xrouter_ready", labels) is None
    kube.objects[("XRouter", "ns", "r")]["spec"]["replicas"] = 2
    rec.reconcile("ns", "r")
    assert REGISTRY.get_sample_value("xrouter_operator_xrouter_ready", labels) == 0


def test_turning_autoscaling_on_from_zero_starts_at_min_replicas() -> None:
    kube, rec = make(replicas=0)
    rec.reconcile("ns", "r")
    dep = ("Deployment", "ns", "r")
    assert kube.objects[dep]["spec"]["replicas"] == 0
    xr = kube.objects[("XRouter", "ns", "r")]
    xr["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 3, "maxReplicas": 10}
    rec.reconcile("ns", "r")
    # An HPA never scales a target at 0: passing the 0 on would leave it there for good.
    assert kube.objects[dep]["spec"]["replicas"] == 3
    assert kube.replica_owners[dep] == {"xrouter-operator-handover"}


def test_an_autoscaled_deployment_stuck_at_zero_is_started_at_min_replicas() -> None:
    kube, rec = make(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 10})
    rec.reconcile("ns", "r")
    kube.hpa_scales("ns", "r", 0)  # e.g. turned on from 0 by an older operator
    rec.reconcile("ns", "r")
    assert kube.objects[("Deployment", "ns", "r")]["spec"]["replicas"] == 2


def test_an_hpa_scale_up_keeps_ready_posts_no_warning_and_keeps_the_gauge() -> None:
    from prometheus_client import REGISTRY

    kube, rec = make(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 10})
    rec.reconcile("ns", "r")
    kube.hpa_scales("ns", "r", 2)
    ready_deployment(kube)
    rec.reconcile("ns", "r")
    assert cond(kube, "Ready")["status"] == "True"
    kube.events.clear()
    kube.hpa_scales("ns", "r", 3)
    d = kube.objects[("Deployment", "ns", "r")]
    d["status"].update(replicas=3, updatedReplicas=3)  # the third pod is starting
    rec.reconcile("ns", "r")
    assert cond(kube, "Ready")["status"] == "True"
    assert cond(kube, "Progressing")["status"] == "True"
    assert [e for e in kube.events if e["type"] == "Warning"] == []
    labels = {"namespace": "ns", "name": "r"}
    assert REGISTRY.get_sample_value("xrouter_operator_xrouter_ready", labels) == 1


def test_a_port_out_of_range_is_a_condition_and_an_event_naming_the_field() -> None:
    # An object stored under an older CRD (whose pattern let the port through).
    kube, rec = make(
        providers=[{"name": "vllm", "type": "openai", "baseUrl": "http://x:99999/v1"}],
        models=[{"name": "m", "targets": [{"provider": "vllm", "model": "llama"}]}],
    )
    out = rec.reconcile("ns", "r")
    assert out.result == "skipped"
    degraded = cond(kube, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert "spec.providers[0].baseUrl: the port must be in 1-65535" in degraded["message"]
    warnings = [e for e in kube.events if e["type"] == "Warning" and e["reason"] == "InvalidSpec"]
    assert len(warnings) == 1 and "spec.providers[0].baseUrl" in warnings[0]["message"]


BACKUP = {
    "database": {"urlSecretRef": {"name": "pg", "key": "url"}},
    "backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}},
}
PVC = ("PersistentVolumeClaim", "ns", "r-backup")


def test_backup_dumps_outlive_the_xrouter_and_a_new_one_adopts_them() -> None:
    kube, rec = make(**BACKUP)
    rec.reconcile("ns", "r")
    # No ownerReference: the garbage collector leaves the claim when the XRouter goes.
    assert "ownerReferences" not in kube.objects[PVC]["metadata"]
    kube.writes.clear()
    rec.reconcile("ns", "r")
    assert [w for w in kube.writes if w[0] == "apply"] == []
    # Deleted (the garbage collector deletes what the XRouter owns) and re-created with a
    # new uid: the claim with the dumps is adopted, not a conflict.
    for key, obj in list(kube.objects.items()):
        refs = obj["metadata"].get("ownerReferences") or []
        if key[0] == "XRouter" or any(r.get("uid") == "xr-uid" for r in refs):
            del kube.objects[key]
    assert PVC in kube.objects
    new = xrouter(**BACKUP)
    new["metadata"]["uid"] = "xr-uid-2"
    kube.put(new)
    rec.reconcile("ns", "r")
    assert "OwnershipConflict" not in cond(kube, "Degraded")["reason"]  # (the pg Secret is missing)
    assert "ownerReferences" not in kube.objects[PVC]["metadata"]
    assert kube.objects[("CronJob", "ns", "r-backup")]["metadata"]["ownerReferences"][0]["uid"] == "xr-uid-2"
    # whenDeleted: Delete on the adopted claim: now it is the XRouter's to take along.
    storage = {"size": "1Gi", "whenDeleted": "Delete"}
    kube.objects[("XRouter", "ns", "r")]["spec"]["backup"]["storage"] = storage
    rec.reconcile("ns", "r")
    assert "OwnershipConflict" not in cond(kube, "Degraded")["reason"]
    assert [r["uid"] for r in kube.objects[PVC]["metadata"]["ownerReferences"]] == ["xr-uid-2"]


def test_when_deleted_delete_gives_the_claim_to_the_xrouter_and_retain_takes_it_back() -> None:
    storage = {"size": "1Gi", "whenDeleted": "Delete"}
    kube, rec = make(database=BACKUP["database"], backup={**BACKUP["backup"], "storage": storage})
    rec.reconcile("ns", "r")
    assert [r["uid"] for r in kube.objects[PVC]["metadata"]["ownerReferences"]] == ["xr-uid"]
    # Back to Retain (or a claim an older operator owned): the reference is removed.
    kube.objects[("XRouter", "ns", "r")]["spec"]["backup"]["storage"] = {"size": "1Gi"}
    rec.reconcile("ns", "r")
    assert "ownerReferences" not in kube.objects[PVC]["metadata"]


def test_a_foreign_claim_of_the_same_name_is_still_a_conflict() -> None:
    kube, rec = make(**BACKUP)
    kube.put({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "r-backup"}})
    rec.reconcile("ns", "r")
    assert cond(kube, "Degraded")["reason"] == "OwnershipConflict"


def test_the_policy_admits_the_pods_behind_a_providers_cluster_service() -> None:
    kube, rec = make(
        providers=[{"name": "vllm", "type": "openai", "baseUrl": "http://vllm.ml.svc/v1"}],
        models=[{"name": "m", "targets": [{"provider": "vllm", "model": "llama"}]}],
    )
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "vllm", "namespace": "ml"},
            "spec": {"selector": {"app": "vllm"}, "ports": [{"port": 80, "targetPort": 8000}]},
        }
    )
    rec.reconcile("ns", "r")
    egress = kube.objects[("NetworkPolicy", "ns", "r")]["spec"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert 8000 in ports and 80 not in ports
