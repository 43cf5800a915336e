"""Leased RPM, the ``Limiter``'s part for keys with an RPM of 200/min or more (and no
concurrency limit): blocks of RPM tokens, 1% of the limit (at most 1000) per Redis
call, refilled in the background when half used, so most requests never wait on
Redis. One grant per key is in flight at a time, and requests that find the block
empty wait for it. Tokens are taken from the shared counter atomically, so the limit
is never exceeded; the bounded error is the other way: up to 1.5 blocks per process
may sit unused, so the cluster may refuse up to 1.5% of the limit per process early.
TPM is then checked against the window's total as of the last grant plus this
process's own tokens (and reservations) since."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from ..auth import KeyInfo
from ..errors import APIError
from .redisbatch import ScriptBatcher


@dataclass(slots=True)
class _Block:
    """RPM tokens this process holds for one key in the current window."""

    left: int = 0
    expires: float = 0.0  # monotonic end of the window the tokens belong to
    tpm_used: int = 0  # the window's TPM total at the last grant, plus ours since
    exhausted: bool = False  # Redis has no RPM tokens left in this window
    refill: asyncio.Task[None] | None = None  # the one grant in flight for this key


def lease_block(rpm: int) -> int:
    """RPM tokens leased per Redis call: 1% of the limit, at most 1000. A block of 1
    means no leasing (every request asks Redis), which keeps small limits exact."""
    return max(1, min(1000, rpm // 100))


class RpmLeases:
    """Mixed into ``Limiter``, which provides these attributes and ``base``/``_down``."""

    scripts: ScriptBatcher | None
    redis_up: bool
    blocks: dict[str, _Block]

    def base(self, name: str) -> str:
        raise NotImplementedError

    def _down(self, exc: BaseException) -> None:
        raise NotImplementedError

    def _reject(self, limit: str, retry_after: float | None) -> APIError:
        raise NotImplementedError

    async def _leased(self, key: KeyInfo, rpm: int) -> None:
        """Admit from this process's block of RPM tokens, asking Redis for a new block
        when it is used up (and refilling in the background when it runs low). At most
        one grant per key is in flight: concurrent requests that find the block empty
        wait for it instead of each leasing a block of their own, which would strand
        all but one of those blocks and refuse that many requests early."""
        block = self.blocks.get(key.name)
        if block is None:
            block = self.blocks[key.name] = _Block()
        tpm = key.limits.tpm
        while True:
            now = time.monotonic()
            current = now < block.expires
            if current and block.left > 0:
                break
            if block.refill is not None:
                await asyncio.shield(block.refill)
                if not self.redis_up:
                    raise ConnectionError("redis is down")
                continue
            if current and (block.exhausted or (tpm is not None and block.tpm_used >= tpm)):
                break  # refused below, until the window ends
            block.refill = asyncio.get_running_loop().create_task(self._refill(key, block, rpm))
        if tpm is not None and block.tpm_used >= tpm:
            raise self._reject("tpm", max(0.0, block.expires - now))
        if block.left <= 0:
            raise self._reject("rpm", max(0.0, block.expires - now))
        block.left -= 1
        size = lease_block(rpm)
        if block.left <= size // 2 and block.refill is None and not block.exhausted:
            block.refill = asyncio.get_running_loop().create_task(self._refill(key, block, rpm))

    async def _grant(self, key: KeyInfo, block: _Block, rpm: int) -> None:
        assert self.scripts is not None
        spec = f"{rpm} {-1 if key.limits.tpm is None else key.limits.tpm} {lease_block(rpm)}"
        granted, retry_ms, used = await self.scripts.call("lease", [self.base(key.name)], [spec])
        expires = time.monotonic() + int(retry_ms) / 1000
        if expires > block.expires + 0.5:  # a new window: earlier tokens are void
            block.left = 0
            block.exhausted = False
        block.expires = expires
        block.tpm_used = int(used)
        if granted == -2:
            block.tpm_used = max(block.tpm_used, key.limits.tpm or 0)
        elif granted == -1:
            block.exhausted = True
        elif granted > 0:
            block.left += int(granted)

    async def _refill(self, key: KeyInfo, block: _Block, rpm: int) -> None:
        try:
            await self._grant(key, block, rpm)
        except (RedisError, OSError) as exc:
            self._down(exc)
        finally:
            block.refill = None
