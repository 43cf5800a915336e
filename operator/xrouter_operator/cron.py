"""Cron schedule checks for spec.backup.schedule (the CRD's pattern only checks the shape)."""

from __future__ import annotations

# Five cron fields (numbers, names, ranges, steps, lists) or a @macro.
_CRON_FIELD = r"[0-9A-Za-z*?,/-]+"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"

_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {
        m: i + 1
        for i, m in enumerate(
            ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        )
    },
    {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
)
_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def check_cron(expr: str) -> None:
    """Raise ValueError naming spec.backup.schedule if ``expr`` is not a valid cron line."""
    expr = expr.strip()
    if expr.startswith("@"):
        if expr[1:] not in {"yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"}:
            raise ValueError(f"spec.backup.schedule: unknown macro {expr!r}")
        return
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"spec.backup.schedule: expected 5 fields, got {len(parts)} in {expr!r}")
    for part, (lo, hi), names, label in zip(parts, _CRON_RANGES, _CRON_NAMES, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                raise ValueError(f"spec.backup.schedule: bad step {item!r} in the {label} field")
            if base in ("*", "?"):
                continue
            for bound in base.split("-", 1):
                v = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if v is None or not lo <= v <= hi:
                    raise ValueError(f"spec.backup.schedule: {bound!r} is out of range in the {label} field")
