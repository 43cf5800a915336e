"""A short-lived credential (AWS keys, a Google access token) cached and fetched again
before it expires: once for every request waiting on it, and kept while it still
works when a fetch fails."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

import httpx

from ..errors import UpstreamFailure


class Expiring(Protocol):
    @property
    def expires(self) -> float | None: ...  # epoch seconds; None: never


T = TypeVar("T", bound=Expiring)


class CredentialError(Exception):
    """No credential could be had; the message names the source, never a secret."""


class Refreshing(Generic[T]):
    """Hands out the current credential; fetches when the cached one is within
    ``refresh_before`` seconds of expiring."""

    def __init__(
        self,
        describe: str,
        fetch: Callable[[], Awaitable[T]] | None = None,
        static: T | None = None,
        refresh_before: float = 600.0,
    ) -> None:
        self.describe = describe
        self.refresh_before = refresh_before
        self._fetch = fetch
        self._value = static
        self._lock = asyncio.Lock()

    def _fresh(self, value: T | None) -> bool:
        return value is not None and (
            value.expires is None or value.expires - time.time() > self.refresh_before
        )

    async def get(self) -> T:
        value = self._value
        if value is not None and self._fresh(value):
            return value
        async with self._lock:
            value = self._value
            if value is not None and self._fresh(value):
                return value
            assert self._fetch is not None
            try:
                self._value = value = await self._fetch()
            except (CredentialError, httpx.HTTPError, OSError, ValueError) as exc:
                # A credential that still works for a minute beats none: the next
                # request tries the fetch again.
                if value is not None and value.expires is not None and value.expires - time.time() > 60:
                    return value
                what = exc if isinstance(exc, CredentialError) else type(exc).__name__
                raise UpstreamFailure(
                    502,
                    f"cannot get credentials ({self.describe}): {what}",
                    breaker=True,
                    retry=False,
                    code="upstream_auth_error",
                ) from None
            return value
