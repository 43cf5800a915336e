"""Lua script calls to Redis, pipelined: every call made in the same event-loop tick
goes out in one round trip. Under load that turns N requests' limit checks into one
write and one read, which keeps Redis off the critical path as far as it can be."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

Call = tuple[str, Sequence[str], Sequence[str | int], "asyncio.Future[Any] | None"]


class ScriptBatcher:
    def __init__(self, redis: Redis, scripts: dict[str, str]) -> None:
        self.redis = redis
        self.source = {hashlib.sha1(src.encode()).hexdigest(): src for src in scripts.values()}
        self.sha = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in scripts.items()}
        self._pending: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> asyncio.Future[Any]:
        """Run the script with the next batch; the future gets its result or error."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._add((self.sha[script], keys, args, fut))
        return fut

    def send(self, script: str, keys: Sequence[str], args: Sequence[str | int]) -> None:
        """Fire and forget: errors are dropped (the caller has moved on)."""
        self._add((self.sha[script], keys, args, None))

    def _add(self, call: Call) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(call)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Call]) -> None:
        try:
            results = await self._execute(batch)
            if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted: load and redo
                for src in self.source.values():
                    await self.redis.script_load(src)
                results = await self._execute(batch)
        except (RedisError, OSError) as exc:
            results = [exc] * len(batch)
        for (_, _, _, fut), result in zip(batch, results, strict=True):
            if fut is None or fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _execute(self, batch: list[Call]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for sha, keys, args, _ in batch:
            pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def aclose(self) -> None:
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
