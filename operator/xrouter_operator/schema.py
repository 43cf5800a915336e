"""Building blocks of the XRouter API models: the base class, shared patterns and the
helpers that put Kubernetes schema extensions (CEL rules, list-map keys) into a class body."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, JsonValue, WithJsonSchema
from xrouter_router.config import CamelModel

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Bounds keep the CEL rules that cross lists within the API server's cost budget.
MODEL_NAME_MAX = 100
QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"

# An http(s) URL whose authority is a host (name, IPv4 or [IPv6]) with an optional port in
# 1-65535. The CRD carries it as a pattern, so the API server refuses http://x:99999 at
# admission; a looser ^https?:// let it through, and every reconcile then failed on it.
PORT = r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
HTTP_URL = rf"^https?://([^/?#@]*@)?([^/?#@:\[\]]+|\[[0-9A-Fa-f:.]+\])(:{PORT})?([/?#].*)?$"

# A Kubernetes object the operator passes through untouched (affinity, selectors, ...).
Json = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
IntOrString = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True})]
Quantity = Annotated[int | str, WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY})]


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> ConfigDict:
    """A ``model_config`` carrying CEL rules for the class's schema: (rule, message[, fieldPath]).

    Used in the class body (``model_config = cel(...)``), which pydantic merges with the
    base class's config, so the rule sits next to the fields it checks."""
    out: list[JsonValue] = []
    for r in rules:
        item: dict[str, JsonValue] = {"rule": r[0], "message": r[1]}
        if len(r) == 3:
            item["fieldPath"] = r[2]
        out.append(item)
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": out})


def map_list(*keys: str) -> dict[str, Any]:
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


class ApiModel(CamelModel):
    """The router config's base: one set of wire conventions for both APIs."""
