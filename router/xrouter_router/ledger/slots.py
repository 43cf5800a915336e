"""Concurrency slots held in Redis (``maxConcurrent``), the ``Limiter``'s part that
keeps them: live slots are refreshed by a heartbeat, so only a dead replica's slots
expire by their TTL; a slot whose release Redis did not take (down, or the send
failed) is kept and released as soon as Redis answers again, so the key is not
refused for a whole TTL after a short outage."""

from __future__ import annotations

import asyncio
import logging
import time

from .redisbatch import ScriptBatcher

log = logging.getLogger("xrouter.limits")

SLOT_MAX_SECONDS = 3600.0  # a concurrency slot is refreshed for at most this long


class ConcurrencySlots:
    """Mixed into ``Limiter``, which provides these attributes and ``base``/``_down``."""

    scripts: ScriptBatcher | None
    redis_up: bool
    lease_ttl_ms: str
    _slots: dict[str, dict[str, float]]  # key name -> request id -> when acquired
    _orphans: dict[str, set[str]]
    _beat: asyncio.Task[None] | None

    def base(self, name: str) -> str:
        raise NotImplementedError

    def _down(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _free(self, name: str, request_id: str, tokens: int = 0, held: int = 0, minute: int = -1) -> None:
        """Release a concurrency slot in Redis, keeping it to retry if Redis fails."""
        assert self.scripts is not None
        fut = self.scripts.call("settle", [self.base(name)], [tokens, request_id, held, minute])

        def done(f: asyncio.Future[object]) -> None:
            exc = None if f.cancelled() else f.exception()
            if f.cancelled() or exc is not None:
                self._orphans.setdefault(name, set()).add(request_id)
                self._down(exc or ConnectionError("cancelled"))

        fut.add_done_callback(done)

    def _free_orphans(self) -> None:
        orphans, self._orphans = self._orphans, {}
        for name, ids in orphans.items():
            for rid in ids:
                self._free(name, rid)

    def _hold(self, name: str, request_id: str) -> None:
        self._slots.setdefault(name, {})[request_id] = time.monotonic()
        if self._beat is None or self._beat.done():
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    def _release(self, name: str, request_id: str) -> None:
        held = self._slots.get(name)
        if held is not None:
            held.pop(request_id, None)
            if not held:
                del self._slots[name]

    async def _heartbeat(self) -> None:
        """Keep this process's live slots from expiring: one pipelined call per key
        with live slots, every third of the TTL."""
        while True:
            await asyncio.sleep(int(self.lease_ttl_ms) / 3000)
            if self.scripts is None or not self.redis_up:
                continue
            oldest = time.monotonic() - SLOT_MAX_SECONDS
            for name, held in list(self._slots.items()):
                # A slot never settled (a bug elsewhere) stops being refreshed at some
                # point rather than holding the key's concurrency for ever.
                for rid in [rid for rid, since in held.items() if since < oldest]:
                    log.warning(
                        "concurrency slot held for %.0f s without settling; letting it expire",
                        SLOT_MAX_SECONDS,
                    )
                    self._release(name, rid)
                ids = list(self._slots.get(name, {}))
                if ids:
                    self.scripts.send("touch", [self.base(name)], [self.lease_ttl_ms, *ids])
