"""One usage row: what is recorded per request, and how it is read back from a spill."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import orjson

COLUMNS = (
    "request_id",
    "key_name",
    "model",
    "provider",
    "upstream_model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "status",
    "latency_ms",
    "created_at",
    "cache_status",
    "estimated",
    "unpriced",
)
# The JSON type of each column as spilled: a line whose values do not match is refused
# before it reaches COPY, where one bad value would fail (and block) its whole batch.
_TYPES: tuple[type | tuple[type, ...], ...] = (
    str,
    str,
    str,
    str,
    str,
    int,
    int,
    int,
    (int, float),
    int,
    (int, float),
    (int, float),
    (str, type(None)),
    bool,
    bool,
)
# Rows spilled before the cache_status, estimated and unpriced columns existed have fewer values.
_LENGTHS = (len(_TYPES) - 3, len(_TYPES) - 2, len(_TYPES) - 1, len(_TYPES))


@dataclass(slots=True)
class UsageRow:
    request_id: str
    key_name: str
    model: str
    provider: str
    upstream_model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    status: int
    latency_ms: float
    created_at: float  # unix time
    # On a route with a response cache: "cache_hit" (answered from Redis, no upstream
    # call, zero cost) or "cache_miss"; None on routes without one.
    cache_status: str | None = None
    # The token counts are (partly) the router's estimate: the request ended before the
    # upstream's final count (a hang-up, a stall, a broken stream; see meter.py).
    estimated: bool = False
    # No price for the upstream model (config prices or the catalogue): cost_usd is
    # unknown, not 0 (pricing.py).
    unpriced: bool = False


def record(row: UsageRow) -> tuple[object, ...]:
    """The row as COPY takes it."""
    # Field by field: ``dataclasses.astuple`` deep-copies every value, which cost more
    # than the rest of the batch write.
    return (
        row.request_id,
        row.key_name,
        row.model,
        row.provider,
        row.upstream_model,
        row.prompt_tokens,
        row.completion_tokens,
        row.cached_tokens,
        row.cost_usd,
        row.status,
        row.latency_ms,
        dt.datetime.fromtimestamp(row.created_at, dt.UTC),
        row.cache_status,
        row.estimated,
        row.unpriced,
    )


def parse_row(line: bytes) -> UsageRow | None:
    """A spilled row, or None if the line is torn or not a usage row."""
    try:
        values = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(values, list) or len(values) not in _LENGTHS:
        return None
    for value, kind in zip(values, _TYPES[: len(values)], strict=True):
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            return None
    if not values[0]:
        return None
    return UsageRow(*values)
