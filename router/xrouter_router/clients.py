"""The upstream HTTP clients: one ``httpx.AsyncClient`` per provider, over the
httpx-aiohttp transport. This is the only module that knows which transport is
underneath; everything else speaks httpx's client API."""

from __future__ import annotations

import aiohttp
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


def _untimed(exc: httpx.TimeoutException) -> httpx.TransportError:
    """httpx-aiohttp maps every aiohttp connection error to a timeout (ConnectTimeout),
    so an upstream that hangs up without answering, or refuses the connection, would
    read as a timeout (504). Only a cause that is a timeout stays one; a refused or
    reset connection (an OSError) is a ConnectError, a hang-up a RemoteProtocolError:
    failed upstreams, 502."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, TimeoutError):
        return exc
    if isinstance(cause, OSError):
        return httpx.ConnectError(f"connection failed: {type(cause).__name__}")
    return httpx.RemoteProtocolError(f"upstream closed the connection: {type(cause).__name__}")


class _Transport(AiohttpTransport):
    """The httpx-aiohttp transport, with its errors before the answer told apart
    (``_untimed``). The body's stream is left as it is: no extra layer on every chunk."""

    def __init__(self) -> None:
        super().__init__(limits=LIMITS, client=self._session)

    def _session(self) -> aiohttp.ClientSession:
        # The session the transport would make (its connector, limits and TLS context),
        # with aiohttp's own cookie jar replaced by one that keeps nothing: the default
        # jar stored what an upstream's answer set and sent it with every later request
        # to that host, whoever's request it was (_NoCookies is httpx's jar, above it).
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            raise _untimed(exc) from exc


class Clients:
    """Clients by provider name. They outlive config reloads (a reload must not drop
    warm connections) and are closed once, at shutdown."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def get(self, provider: str) -> httpx.AsyncClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = httpx.AsyncClient(
                transport=_Transport(),
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
