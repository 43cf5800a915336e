"""spec.secretProviderClass (the Secrets Store CSI driver, e.g. Vault): a secretKeyRef
naming it is read from the driver's volume, mounted where the router reads secret files;
the others still come from Secrets; what cannot work is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from test_op_render import xr as xrouter
from xrouter_operator.crd import crd_yaml
from xrouter_operator.models import secret_refs
from xrouter_operator.render import RenderError, RenderInputs, parse, render
from xrouter_router.config import parse_config

STORE = "vault-xrouter"


def xr(**spec: Any) -> dict[str, Any]:
    openai = {
        "name": "openai",
        "type": "openai",
        "baseUrl": "https://api.openai.com/v1",
        "apiKeySecretRef": {"name": STORE, "key": "openai-api-key"},
    }
    base: dict[str, Any] = {
        "secretProviderClass": {"name": STORE},
        "providers": [openai],
        "models": [{"name": "m", "targets": [{"provider": "openai", "model": "gpt-4o"}]}],
        "keys": [{"name": "team-a", "secretKeyRef": {"name": "client-keys", "key": "team-a"}}],
    }
    return xrouter(**{**base, **spec})


def _pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    deploy = next(m for m in objs if m["kind"] == "Deployment")
    pod: dict[str, Any] = deploy["spec"]["template"]["spec"]
    return pod


def test_objects_of_the_secret_provider_class_are_files_in_its_csi_volume() -> None:
    objs = render(parse(xr()), RenderInputs(admin_key="k"))
    cm = next(m for m in objs if m["kind"] == "ConfigMap")
    config = parse_config(cm["data"]["config.json"])
    api_key = config.providers[0].api_key
    assert api_key is not None and api_key.file == "/var/run/xrouter/secrets-store/openai-api-key"
    key = config.keys[0].secret
    assert key is not None and key.file == "/var/run/xrouter/secrets/keys/team-a"  # still a Secret
    pod = _pod(objs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secrets-store"]["csi"] == {
        "driver": "secrets-store.csi.k8s.io",
        "readOnly": True,
        "volumeAttributes": {"secretProviderClass": STORE},
    }
    # The projected volume holds only real Secrets: no source names the SecretProviderClass.
    projected = [s["secret"]["name"] for s in volumes["secrets"]["projected"]["sources"]]
    assert STORE not in projected and "client-keys" in projected
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["secrets-store"] == {
        "name": "secrets-store",
        "mountPath": "/var/run/xrouter/secrets-store",
        "readOnly": True,
    }
    # Status looks for missing Secrets only: no "Secret vault-xrouter not found".
    assert [ref.name for _, ref in secret_refs(parse(xr()).spec)] == ["client-keys"]


def test_without_a_secret_provider_class_nothing_changes() -> None:
    obj = xr()
    del obj["spec"]["secretProviderClass"]
    objs = render(parse(obj), RenderInputs(admin_key="k"))
    assert "secrets-store" not in {v["name"] for v in _pod(objs)["volumes"]}
    # The same name is then an ordinary Secret, which status checks for.
    assert STORE in [ref.name for _, ref in secret_refs(parse(obj).spec)]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (
            {"keys": [{"name": "a", "secretKeyRef": {"name": STORE, "key": "../etc/passwd"}}]},
            "spec.keys[a].secretKeyRef.key",
        ),
        (
            {
                "database": {"urlSecretRef": {"name": STORE, "key": "database-url"}},
                "backup": {"schedule": "0 3 * * *", "storage": {"size": "1Gi"}},
            },
            "spec.backup: the backup Job reads the database URL from a Secret",
        ),
        ({"secretProviderClass": {"name": "Not_Valid"}}, "spec.secretProviderClass.name"),
    ],
)
def test_what_cannot_work_is_refused_naming_the_field(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(RenderError, match=needle.replace("[", r"\[").replace(".", r"\.")):
        parse(xr(**spec))


def test_the_crd_carries_the_field_and_the_backup_rule() -> None:
    text = crd_yaml()
    assert "secretProviderClass" in text
    assert "self.database.urlSecretRef.name != self.secretProviderClass.name" in text
