"""The LLM endpoints: authenticate, validate, limit, route, call the upstream with
retries, failover and breakers, answer (streaming or not), then account.

A retry or failover only happens before the first byte of the answer has gone to
the client; after that, a broken upstream stream ends the client's stream with an
error event.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from httpx_aiohttp.transport import map_aiohttp_exceptions

from . import logs, validate
from .asgi import Receive, Scope, Send, header, read_body, respond
from .auth import KeyInfo, bearer
from .errors import APIError
from .limits import Lease
from .metrics import UNKNOWN
from .providers import Adapter, Usage
from .routing import TargetState
from .runtime import Runtime
from .sse import SSEParser
from .usage import UsageRow

if TYPE_CHECKING:
    from .app import App

_RETRIABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


# A request still running after this long gets a task watching for the client going
# away. Most upstream calls outlive it, but a fast one (a cache, a small model, the
# benchmark's nginx) finishes first and never pays for a task; a client that left in
# the meantime is noticed as soon as the watcher starts (receive() reports it at once).
WATCH_AFTER = 0.02

_TIMEOUT_TAIL = b'data: {"error":{"message":"upstream timed out","type":"timeout_error"}}\n\n'
_BROKEN_TAIL = b'data: {"error":{"message":"upstream stream ended early","type":"upstream_error"}}\n\n'


class UpstreamFailure(Exception):
    """An attempt failed in a way that allows trying again (or elsewhere)."""

    def __init__(self, status: int, message: str, *, breaker: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.breaker = breaker
        self.retry_after = retry_after


class UpstreamRefusal(Exception):
    """The upstream answered 4xx (not 429): passed to the client, never retried."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass(slots=True)
class Call:
    """Everything about one client request, filled in as it progresses."""

    request_id: str
    started: float
    kind: str
    model: str = UNKNOWN  # label value: a configured model or "unknown"
    provider: str = "none"
    upstream_model: str = ""
    key: KeyInfo | None = None
    status: int = 0
    stream: bool = False
    upstream_seconds: float = 0.0
    ttft: float | None = None
    usage: Usage = field(default_factory=Usage)
    answered: bool = False  # the final body has been handed to the server
    disconnected: bool = False
    watcher: asyncio.Task[None] | None = None

    def meta(self, overhead: float) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-request-id", self.request_id.encode()),
            (b"x-xrouter-overhead-ms", f"{overhead * 1000:.3f}".encode()),
        ]


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _arm(receive: Receive, task: asyncio.Task[Any], call: Call) -> None:
    call.watcher = asyncio.get_running_loop().create_task(_watch(receive, task, call))


async def _watch(receive: Receive, task: asyncio.Task[Any], call: Call) -> None:
    """Cancel the request's task if the client goes away before the answer is done."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not call.answered:
                call.disconnected = True
                task.cancel()
            return


class Proxy:
    def __init__(self, app: App) -> None:
        self.app = app
        self.metrics = app.metrics
        # aiohttp's client session, used directly: what httpx-aiohttp's transport
        # does, minus building httpx Request/Headers/Response models around every
        # call (the largest cost left in profiles). Errors are mapped to httpx's
        # exceptions by the transport's own mapping, so they read the same as before.
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = _session()
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _timeout(self, connect: float, first_byte: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, first_byte))
        if timeout is None:
            if len(self._timeouts) > 1000:
                self._timeouts.clear()
            timeout = self._timeouts[(connect, first_byte)] = aiohttp.ClientTimeout(
                sock_connect=connect, sock_read=first_byte, connect=connect
            )
        return timeout

    async def handle(self, kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        rt = app.runtime
        call = Call(uuid.uuid4().hex, time.perf_counter(), kind)
        lease: Lease | None = None
        try:
            raw = bearer(scope["headers"])
            key = app.keys.lookup(raw) if raw else None
            if key is None:
                raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
            call.key = key
            body = await read_body(scope, receive, rt.config.server.max_body_bytes)
            payload = validate.parse(body, kind)
            model = payload["model"]
            route = rt.routes.get(model)
            if route is None:
                raise APIError(
                    404, f"The model '{model}' does not exist", param="model", code="model_not_found"
                )
            call.model = model
            if not key.may_use(model):
                raise APIError(
                    403, f"This key may not use the model '{model}'", param="model", code="model_not_allowed"
                )
            call.stream = bool(payload.get("stream")) and kind != "embeddings"
            lease = await app.limiter.acquire(key, call.request_id)
        except APIError as exc:
            call.status = exc.status
            if exc.status != 499:
                overhead = time.perf_counter() - call.started
                await respond(send, exc.status, exc.body(), exc.headers()[1:] + call.meta(overhead))
            self._finish(call, rt, record=call.model != UNKNOWN and exc.status in (429, 503))
            return

        inflight = self.metrics.child(self.metrics.inflight, call.model)
        inflight.inc()
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(WATCH_AFTER, _arm, receive, task, call)
        try:
            await self._serve(call, rt, payload, scope, send)
        except asyncio.CancelledError:
            if not call.disconnected:
                raise
            task.uncancel()
            call.status = 499
        finally:
            timer.cancel()
            if call.watcher is not None:
                call.watcher.cancel()
            inflight.dec()
            if lease is not None:
                app.limiter.settle(lease, call.usage.prompt + call.usage.completion)
            self._finish(call, rt, record=True)

    async def _serve(
        self, call: Call, rt: Runtime, payload: dict[str, Any], scope: Scope, send: Send
    ) -> None:
        route = rt.routes[call.model]
        hash_value: str | None = None
        if route.hash_key == "user":
            user = payload.get("user")
            hash_value = user if isinstance(user, str) else None
        else:
            raw = header(scope, route.hash_key[7:].lower().encode())
            hash_value = raw.decode("latin-1") if raw is not None else None
        retry = rt.config.retry
        last: UpstreamFailure | None = None
        for i, name in enumerate([call.model, *route.fallbacks]):
            if i:
                self.metrics.fallbacks.labels(call.model).inc()
            for target in rt.routes[name].order(hash_value):
                adapter = rt.adapters[target.provider]
                if not adapter.supports(call.kind):
                    continue
                retries = adapter.provider.max_retries
                for attempt in range(retries + 1):
                    if not target.breaker.allow():
                        break
                    call.provider, call.upstream_model = target.provider, target.upstream_model
                    try:
                        await self._attempt(call, adapter, target, payload, send)
                    except UpstreamFailure as exc:
                        last = exc
                        if exc.breaker:
                            target.breaker.failure()
                        else:
                            target.breaker.release_probe()
                    except UpstreamRefusal as exc:
                        target.breaker.release_probe()
                        call.status = exc.status
                        await respond(send, exc.status, exc.body, self._meta(call))
                        return
                    except BaseException:
                        target.breaker.release_probe()
                        raise
                    else:
                        target.breaker.success()
                        return
                    if attempt == retries:
                        break
                    delay = min(retry.max_delay_seconds, retry.base_delay_seconds * 2**attempt)
                    delay *= 0.5 + random.random() / 2
                    if last.retry_after is not None:
                        if last.retry_after > retry.max_delay_seconds:
                            break  # too long to wait here: try elsewhere
                        delay = max(delay, last.retry_after)
                    self.metrics.retries.labels(call.model, target.provider).inc()
                    await asyncio.sleep(delay)
        if last is None:
            call.provider = "none"
            raise_status = APIError(
                503, "No upstream is available for this model (circuit open)", code="upstream_unavailable"
            )
        else:
            raise_status = APIError(
                last.status,
                last.message,
                code="upstream_error",
                retry_after=last.retry_after if last.status == 429 else None,
            )
        call.status = raise_status.status
        await respond(
            send, raise_status.status, raise_status.body(), raise_status.headers()[1:] + self._meta(call)
        )

    def _meta(self, call: Call) -> list[tuple[bytes, bytes]]:
        return call.meta(time.perf_counter() - call.started - call.upstream_seconds)

    async def _attempt(
        self, call: Call, adapter: Adapter, target: TargetState, payload: dict[str, Any], send: Send
    ) -> None:
        timeouts = adapter.provider.timeouts
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        target.inflight += 1
        began = time.perf_counter()
        try:
            if adapter.local:
                chunks = self._local(adapter, call, payload, target.upstream_model)
                await self._answer(call, adapter, chunks, None, include_usage, began, send)
                return
            url, headers, body = adapter.request(call.kind, payload, target.upstream_model, call.stream)
            timeout = self._timeout(timeouts.connect, timeouts.first_byte)
            try:
                async with asyncio.timeout(timeouts.total):
                    with map_aiohttp_exceptions():
                        resp = await self.session().request(
                            "POST",
                            url,
                            headers=headers,
                            data=body or None,
                            allow_redirects=False,
                            auto_decompress=False,
                            compress=False,
                            timeout=timeout,
                        )
                    try:
                        if resp.status != 200:
                            with map_aiohttp_exceptions():
                                data = await resp.read()
                            self._refuse(call, adapter, resp, data, began)
                        await self._answer(call, adapter, _chunks(resp), resp, include_usage, began, send)
                    finally:
                        with map_aiohttp_exceptions():
                            await resp.__aexit__(None, None, None)
            except TimeoutError:
                if call.ttft is not None:  # mid-stream: too late to retry; end the stream
                    if not call.answered:
                        call.status, call.answered = 504, True
                        await send({"type": "http.response.body", "body": _TIMEOUT_TAIL, "more_body": False})
                    return
                raise UpstreamFailure(504, f"upstream {adapter.name} timed out", breaker=True) from None
            except httpx.TimeoutException:
                raise UpstreamFailure(504, f"upstream {adapter.name} timed out", breaker=True) from None
            except httpx.TransportError as exc:
                raise UpstreamFailure(
                    502, f"upstream {adapter.name} is unreachable: {type(exc).__name__}", breaker=True
                ) from None
        finally:
            target.inflight -= 1

    def _refuse(
        self, call: Call, adapter: Adapter, resp: aiohttp.ClientResponse, data: bytes, began: float
    ) -> None:
        call.upstream_seconds += time.perf_counter() - began
        status = resp.status
        if status in _RETRIABLE_STATUS:
            breaker = status != 429
            code = 429 if status == 429 else (504 if status in (408, 504, 524) else 502)
            raise UpstreamFailure(
                code,
                f"upstream {adapter.name} answered {status}",
                breaker=breaker,
                retry_after=_retry_after(resp),
            )
        raise UpstreamRefusal(status if 400 <= status < 500 else 502, adapter.error_body(status, data))

    async def _local(
        self, adapter: Adapter, call: Call, payload: dict[str, Any], model: str
    ) -> AsyncIterator[bytes]:
        from .providers.mock import MockAdapter

        assert isinstance(adapter, MockAdapter)
        if call.stream:
            async for chunk in adapter.stream(payload, model):
                yield chunk
        else:
            yield adapter.answer(call.kind, payload, model)

    async def _answer(
        self,
        call: Call,
        adapter: Adapter,
        chunks: AsyncIterator[bytes],
        resp: aiohttp.ClientResponse | None,
        include_usage: bool,
        began: float,
        send: Send,
    ) -> None:
        if not call.stream:
            if resp is not None:
                with map_aiohttp_exceptions():
                    data = await resp.read()
            else:
                data = b"".join([c async for c in chunks])
            call.upstream_seconds += time.perf_counter() - began
            out, call.usage = adapter.response(call.kind, data)
            call.status = 200
            target_latency = call.upstream_seconds
            self._observe(call, target_latency)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(out)).encode()),
                        *self._meta(call),
                    ],
                }
            )
            call.answered = True
            await send({"type": "http.response.body", "body": out})
            return
        translator = adapter.translator(call.kind, include_usage, call.model)
        parser = SSEParser()
        started = False
        try:
            async for chunk in chunks:
                out = b"".join(translator.feed(ev.event, ev.data, ev.raw) for ev in parser.feed(chunk))
                if not out:
                    continue
                if not started:
                    call.upstream_seconds += time.perf_counter() - began
                    call.ttft = time.perf_counter() - call.started
                    self._observe(call, call.upstream_seconds)
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-type", b"text/event-stream"),
                                (b"cache-control", b"no-cache"),
                                *self._meta(call),
                            ],
                        }
                    )
                    started = True
                    call.status = 200
                await send({"type": "http.response.body", "body": out, "more_body": True})
        except (httpx.TransportError, TimeoutError) as exc:
            if not started:
                raise UpstreamFailure(502, f"upstream {adapter.name} broke the stream", breaker=True) from exc
        if not started:
            raise UpstreamFailure(502, f"upstream {adapter.name} sent an empty stream", breaker=True)
        if not translator.done:
            call.status = 502
            tail = _BROKEN_TAIL
        else:
            tail = b""
        call.answered = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})
        call.usage = translator.usage

    def _observe(self, call: Call, upstream: float) -> None:
        rt = self.app.runtime
        state = rt.routes.get(call.model, None)
        if state is None:
            return
        for t in state.targets:
            if t.state.provider == call.provider and t.state.upstream_model == call.upstream_model:
                t.state.observe_latency(upstream)
                return

    def _finish(self, call: Call, rt: Runtime, record: bool) -> None:
        m = self.metrics
        total = time.perf_counter() - call.started
        overhead = max(0.0, total - call.upstream_seconds)
        model, provider = call.model, call.provider
        status = call.status or 500
        m.child(m.requests, model, provider, str(status)).inc()
        m.child(m.request_duration, model, provider).observe(total)
        m.child(m.overhead, model).observe(overhead)
        cost = 0.0
        if call.upstream_seconds:
            m.child(m.upstream_duration, model, provider).observe(call.upstream_seconds)
        if call.ttft is not None:
            m.child(m.ttft, model, provider).observe(call.ttft)
        u = call.usage
        if u.prompt or u.completion:
            m.child(m.tokens, model, provider, "prompt").inc(u.prompt)
            m.child(m.tokens, model, provider, "completion").inc(u.completion)
            if u.cached:
                m.child(m.tokens, model, provider, "cached").inc(u.cached)
            cost = rt.cost(call.upstream_model, u)
            if cost:
                m.child(m.cost, model, provider).inc(cost)
        key = call.key.name if call.key else None
        if record and key is not None:
            self.app.usage.record(
                UsageRow(
                    call.request_id,
                    key,
                    model,
                    provider,
                    call.upstream_model,
                    u.prompt,
                    u.completion,
                    u.cached,
                    cost,
                    status,
                    round(total * 1000, 3),
                    time.time(),
                )
            )
        logs.access(
            request_id=call.request_id,
            key=key,
            model=model,
            provider=provider,
            upstream_model=call.upstream_model or None,
            status=status,
            stream=call.stream,
            latency_ms=round(total * 1000, 3),
            overhead_ms=round(overhead * 1000, 3),
            prompt_tokens=u.prompt,
            completion_tokens=u.completion,
        )


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    with map_aiohttp_exceptions():
        async for chunk in resp.content.iter_chunked(16 * 1024):
            yield chunk


def _session() -> aiohttp.ClientSession:
    """The session httpx-aiohttp's transport would build for these limits."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=httpx.create_ssl_context(),
    )
    return aiohttp.ClientSession(connector=connector)
