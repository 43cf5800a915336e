"""Concurrency slots: a release that Redis did not take during an outage is retried
as soon as Redis answers again, so a ``maxConcurrent`` key recovers at once instead of
being refused until the slots' TTL runs out."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.asyncio import Redis
from xrouter_dev.tools import free_port
from xrouter_router.auth import KeyInfo
from xrouter_router.config import Limits
from xrouter_router.errors import APIError
from xrouter_router.ledger.limits import Limiter
from xrouter_router.metrics import Metrics

from .servers import RedisServer


class Cuttable:
    """A TCP forwarder to Redis that can be cut (every connection dropped, new ones
    refused) and restored: a network outage with Redis's data intact."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for w in list(self.conns):
            w.close()
        self.conns.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.conns |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_slots_freed_during_an_outage_are_released_when_redis_returns(redis: RedisServer) -> None:
    proxy = Cuttable(redis.port)
    await proxy.start()
    client = Redis.from_url(
        f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.5, socket_connect_timeout=0.5
    )
    # A slot TTL of 10 minutes, as a router with long streams has.
    limiter = Limiter(client, "open", Metrics(), 600, lambda _: 0.0)
    key = KeyInfo("busy", "0" * 64, Limits(max_concurrent=2))
    leases = [await limiter.acquire(key, f"r{i}") for i in range(2)]
    with pytest.raises(APIError):
        await limiter.acquire(key, "r2")  # both slots are taken
    await proxy.cut()
    for lease in leases:  # the two requests end during the outage
        assert lease is not None
        limiter.settle(lease, 0)
    await asyncio.sleep(0.5)
    await proxy.start()  # back, with the slots still in Redis
    await asyncio.sleep(2.5)  # the limiter's probe notices within about a second
    assert limiter.redis_up
    assert await limiter.acquire(key, "r3") is not None  # not refused for 10 minutes
    assert await limiter.acquire(key, "r4") is not None
    await limiter.aclose()
    await proxy.cut()
