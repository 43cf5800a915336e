"""Usage rows that could not be written to PostgreSQL, kept in a Redis stream that
every replica shares, so they outlive the pod that spilled them.

One stream entry per row (``XADD`` is atomic: no torn entries). Any replica that can
reach PostgreSQL replays the stream: it takes a short lock (only to avoid duplicate
work), writes a batch, then deletes those entries. A replica that dies between the
two leaves entries that are written again later, which stores nothing twice because
the table is idempotent on ``request_id``.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..redisconn import SPILL_ACK_MS, replica_acks
from .usagerow import UsageRow, parse_row

log = logging.getLogger("xrouter.usage")

STREAM = "xr:usage:spill"  # in the default namespace; see ``StreamSpill.key``
LOCK = "xr:usage:spill:lock"
LOCK_MS = 30_000
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_ERRORS = (RedisError, OSError, TimeoutError)

Entry = tuple[str, UsageRow | None, bytes]  # stream id, the row (None if unreadable), raw


class StreamSpill:
    def __init__(self, redis: Redis, namespace: str = "xr") -> None:
        self.redis = redis
        self.token = uuid.uuid4().hex
        # Per router (``redis.namespace``): a router sharing the Redis must never replay
        # this router's rows into its own database.
        self.key = f"{namespace}:usage:spill"
        self._lock = self.key + ":lock"

    async def add(self, lines: Sequence[bytes]) -> bool:
        """Append encoded rows; False if Redis did not take all of them (or, behind
        Sentinel, no replica acknowledged them: then they go to disk as well, and the
        copy replayed second stores nothing, the table being idempotent)."""
        acks = replica_acks(self.redis)
        try:
            pipe = self.redis.pipeline(transaction=False)
            for line in lines:
                pipe.xadd(self.key, {"r": line})
            if acks:
                pipe.execute_command("WAIT", acks, SPILL_ACK_MS)
            results = await pipe.execute()
        except _ERRORS as exc:
            log.warning("redis did not take spilled usage rows, spilling to disk: %s", type(exc).__name__)
            return False
        if acks and int(results[-1]) < acks:
            log.warning("no redis replica acknowledged spilled usage rows; keeping them on disk too")
            return False
        return True

    async def length(self) -> int | None:
        try:
            return int(await self.redis.xlen(self.key))
        except _ERRORS:
            return None

    async def lock(self) -> bool:
        try:
            return bool(await self.redis.set(self._lock, self.token, nx=True, px=LOCK_MS))
        except _ERRORS:
            return False

    async def unlock(self) -> None:
        with contextlib.suppress(*_ERRORS):  # else it expires by itself
            await self.redis.eval(_UNLOCK, 1, self._lock, self.token)

    async def take(self, count: int) -> list[Entry] | None:
        """The oldest ``count`` entries, or None if Redis did not answer."""
        try:
            found = await self.redis.xrange(self.key, "-", "+", count=count)
        except _ERRORS:
            return None
        entries: list[Entry] = []
        for entry_id, fields in found or []:
            value = (fields or {}).get(b"r") or (fields or {}).get("r") or b""
            raw = value.encode() if isinstance(value, str) else value  # str with decode_responses
            ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            entries.append((ident, parse_row(raw), raw))
        return entries

    async def drop(self, ids: Sequence[str]) -> bool:
        try:
            await self.redis.xdel(self.key, *ids)
        except _ERRORS:
            return False
        return True
