"""The upstream HTTP clients: one ``httpx.AsyncClient`` per provider, over the
httpx-aiohttp transport. This is the only module that knows which transport is
underneath; everything else speaks httpx's client API."""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

# Generous: a router replica fans out to few upstream hosts, and each streaming
# request holds a connection for its whole length.
LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200)


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing. The router's client is shared by every user's
    requests: a cookie an upstream sets for one must never ride along on another's
    (and parsing Set-Cookie on every response is wasted work)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class Clients:
    """Clients by provider name. They outlive config reloads (a reload must not drop
    warm connections) and are closed once, at shutdown."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def get(self, provider: str) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = httpx.AsyncClient(
                transport=AiohttpTransport(limits=LIMITS),
                # Per-request timeouts come in each request's extensions.
                timeout=None,
                follow_redirects=False,
                # No proxy or .netrc lookups from the environment: the upstream is
                # the provider's baseUrl, as configured.
                trust_env=False,
            )
            client._cookies = _NoCookies()  # the public setter copies into a plain jar
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
