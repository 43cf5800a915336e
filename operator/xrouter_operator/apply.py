"""Drift detection: does the live object already carry everything we would apply?

Server-side apply is only sent when the rendered manifest is not a subset of the live
object, so a steady state makes no writes. Values the API server fills in or
normalises (defaults, ``0.5`` CPU stored as ``500m``, omitted false/empty fields)
compare as equal.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIX: dict[str, int | Decimal] = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def quantity(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value)
    if not m:
        return None
    try:
        return Decimal(m.group(1)) * Decimal(_SUFFIX[m.group(2) or ""])
    except InvalidOperation:
        return None


def _empty(v: Any) -> bool:
    return v is None or v is False or v == "" or v == {} or v == []


def first_difference(desired: Any, live: Any, path: str = "") -> str | None:
    """The path of the first field where live does not carry the desired value, or None."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return path or "."
        for k, v in desired.items():
            sub = f"{path}.{k}"
            if k not in live:
                if not _empty(v):
                    return sub
                continue
            if k == "ownerReferences" and isinstance(v, list) and isinstance(live[k], list):
                for ref in v:
                    if not any(first_difference(ref, lr) is None for lr in live[k]):
                        return sub
                continue
            d = first_difference(v, live[k], sub)
            if d is not None:
                return d
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return path
        for i, (d, lv) in enumerate(zip(desired, live, strict=True)):
            diff = first_difference(d, lv, f"{path}[{i}]")
            if diff is not None:
                return diff
        return None
    if desired == live or (_empty(desired) and _empty(live)):
        return None
    if isinstance(desired, str | int) and isinstance(live, str | int) and not isinstance(desired, bool):
        qd, ql = quantity(desired), quantity(live)
        if qd is not None and ql is not None and qd == ql:
            return None
    return path or "."


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        r.get("uid") == uid and r.get("controller")
        for r in obj.get("metadata", {}).get("ownerReferences") or []
    )


def adoptable(obj: dict[str, Any], labels: dict[str, str]) -> bool:
    """A child left without an ownerReference on purpose (a retained backup PVC): ours
    when it carries our labels and nobody else controls it."""
    meta = obj.get("metadata", {})
    have = meta.get("labels") or {}
    return all(have.get(k) == v for k, v in labels.items()) and not any(
        r.get("controller") for r in meta.get("ownerReferences") or []
    )


def drops_owner(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    """We render no ownerReference but the live object still has ours (a backup PVC
    switched to Retain, or made by an older operator): apply, so the reference goes."""
    if "ownerReferences" in desired.get("metadata", {}):
        return False
    return any(
        r.get("controller") and r.get("apiVersion", "").startswith("xrouter.io/")
        for r in live.get("metadata", {}).get("ownerReferences") or []
    )
