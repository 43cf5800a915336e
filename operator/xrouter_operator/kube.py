"""A small typed wrapper over the Kubernetes API: paths, server-side apply, and a
count of every write (the ``xrouter_operator_api_writes_total`` metric)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client, config

from . import metrics
from .kinds import KINDS

USER_AGENT = "xrouter-operator/0.1"
FIELD_MANAGER = "xrouter-operator"


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    """Synchronous API access (run it in a thread from async code)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.api.user_agent = USER_AGENT

    @classmethod
    def from_environment(cls) -> Kube:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        kind: str = "",
    ) -> Any:
        if method != "GET":
            verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
            if content_type == "application/apply-patch+yaml":
                verb = "apply"
            metrics.API_WRITES.labels(verb=verb, kind=kind or "unknown").inc()
        m, url, headers, body, _ = self.api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api.call_api(m, url, header_params=headers, body=body, _request_timeout=30)
        resp.read()  # type: ignore[no-untyped-call]
        text = resp.data.decode() if resp.data else ""
        if resp.status >= 400:
            try:
                err = json.loads(text)
                raise KubeError(resp.status, str(err.get("reason", "")), str(err.get("message", text)))
            except ValueError:
                raise KubeError(resp.status, "", text[:500]) from None
        return json.loads(text) if text else None

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            out: dict[str, Any] = self.request("GET", KINDS[kind].path(namespace, name))
            return out
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        try:
            out = self.request("GET", KINDS[kind].path(namespace), query={"labelSelector": label_selector})
        except KubeError as e:
            if e.status == 404:
                return []
            raise
        items: list[dict[str, Any]] = out.get("items", [])
        return items

    def apply(self, manifest: dict[str, Any], *, force: bool, manager: str = FIELD_MANAGER) -> dict[str, Any]:
        kind = manifest["kind"]
        meta = manifest["metadata"]
        out: dict[str, Any] = self.request(
            "PATCH",
            KINDS[kind].path(meta["namespace"], meta["name"]),
            query={"fieldManager": manager, "force": "true" if force else "false"},
            body=manifest,
            content_type="application/apply-patch+yaml",
            kind=kind,
        )
        return out

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> None:
        try:
            self.request(
                "DELETE",
                KINDS[kind].path(namespace, name),
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
                kind=kind,
            )
        except KubeError as e:
            if e.status not in (404, 409):
                raise

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.request(
            "PATCH",
            KINDS["XRouter"].path(namespace, name) + "/status",
            body={"status": status},
            content_type="application/merge-patch+json",
            kind="XRouter",
        )

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        self.request("POST", KINDS["Event"].path(namespace), body=event, kind="Event")

    def api_resources(self, group_version: str) -> set[str]:
        """Kinds served under group_version (empty when the group is not installed)."""
        try:
            out = self.request("GET", f"/apis/{group_version}")
        except KubeError as e:
            if e.status in (404, 503):
                return set()
            raise
        return {r["kind"] for r in out.get("resources", []) if "/" not in r["name"]}
