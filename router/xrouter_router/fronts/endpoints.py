"""What the other front doors need beyond ``LLMEndpoint``: Anthropic's error shape on
``/v1/messages`` (``AnthropicErrors``), and ``GET /v1/responses/{id}`` passed to the
providers that keep response state (``ResponseRetrieve``)."""

from __future__ import annotations

import hmac
import logging
import re
import time
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson

from ..asgi import REQUEST_ID, ASGIApp, Message, Receive, Scope, Send, header, read_body, respond
from ..auth import KeyInfo, bearer, hash_key
from ..call import Call
from ..config import Limits
from ..errors import APIError, bad_request
from ..ledger import accounting
from ..ledger.limits import Lease
from ..metrics import UNKNOWN
from ..owners import Owner, Unavailable, final_usage
from ..providers.anthropic import AnthropicAdapter
from ..providers.openai import ResponsesPassThrough
from ..providers.passthrough import ANTHROPIC_BETA, CLIENT_VERSION, beta_header, version_header
from ..state import State
from ..validate import parse

log = logging.getLogger("xrouter.frontdoors")

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
# What a retrieval may ask of the provider; the rest of the query (an api-version,
# say) is the router's to set, and streaming a stored response is not offered.
_QUERY = frozenset({"include", "include[]", "after", "before", "limit", "order"})
# The requests about a stored response: (method, what follows the id).
_STORED = frozenset({("GET", ""), ("DELETE", ""), ("GET", "/input_items"), ("POST", "/cancel")})


def anthropic_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(status: int, body: bytes) -> bytes:
    """An OpenAI-shaped error body (the router's own, or an upstream's already in
    OpenAI's shape) in Anthropic's: ``{"type": "error", "error": {type, message}}``."""
    try:
        err = orjson.loads(body).get("error")
        message = str(err.get("message") or "error") if isinstance(err, dict) else "error"
        param = err.get("param") if isinstance(err, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        message, param = f"error {status}", None
    if isinstance(param, str) and param and param not in message:
        message = f"{param}: {message}"  # Anthropic's shape has no field for it
    return orjson.dumps({"type": "error", "error": {"type": anthropic_type(status), "message": message}})


def _stream_error(body: bytes) -> bytes:
    """The router's own end-of-stream error event (``data: {"error": ...}``) as
    Anthropic's ``error`` event, which the Anthropic SDK raises on."""
    try:
        err = orjson.loads(body[6:].strip()).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return body
    kind = "timeout_error" if err.get("type") == "timeout_error" else "api_error"
    data = {"type": "error", "error": {"type": kind, "message": str(err.get("message") or "upstream error")}}
    return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicErrors:
    """Pure ASGI wrapper: every error answer from the wrapped endpoint, and the
    router's own mid-stream error event, in Anthropic's shape. Success bytes pass
    untouched. Also hands the client's ``anthropic-beta`` and ``anthropic-version``
    headers to a pass-through (``/v1/messages`` and its ``count_tokens``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        held: list[Message] = []  # an error's start, until its body is whole
        chunks: list[bytes] = []

        async def shaped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    held.append(message)
                    return
                await send(message)
                return
            body = message.get("body", b"")
            if held:
                chunks.append(body)
                if message.get("more_body", False):
                    return
                start = held.pop()
                out = anthropic_error(start["status"], b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
                headers.append((b"content-length", str(len(out)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": out})
                return
            if body.startswith(b'data: {"error"'):
                message = {**message, "body": _stream_error(body)}
            await send(message)

        token = ANTHROPIC_BETA.set(beta_header(header(scope, b"anthropic-beta")))
        version = CLIENT_VERSION.set(version_header(header(scope, b"anthropic-version")))
        try:
            await self.app(scope, receive, shaped)
        finally:
            CLIENT_VERSION.reset(version)
            ANTHROPIC_BETA.reset(token)


class ResponseRetrieve:
    """``GET``/``DELETE /v1/responses/{response_id}``, ``GET .../input_items`` and
    ``POST .../cancel``: only for the key that created the response (or the admin
    key; ``owners.py`` keeps the record), any other key getting the same 404 as an
    unknown id. Asked of each provider that keeps response state and that the key
    reaches through a model it may use, the creating provider first, until one
    knows the id. The providers served by translation keep none. A background
    response's result is metered here, once, against the key that created it."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, send)
        except APIError as exc:
            await respond(send, exc.status, exc.body(), exc.headers()[1:])

    async def _serve(self, scope: Scope, send: Send) -> None:
        state = self.state
        rt = state.runtime
        raw = bearer(scope["headers"])
        admin = bool(raw and rt.admin_sha256 and hmac.compare_digest(hash_key(raw), rt.admin_sha256))
        key = state.keys.lookup(raw) if raw and not admin else None
        if key is None and not admin:
            raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
        response_id = str(scope["path_params"]["response_id"])
        suffix = "/" + str(scope["path_params"]["action"]) if "action" in scope["path_params"] else ""
        method = str(scope["method"])
        if (method, suffix) not in _STORED:
            raise APIError(404, f"Unknown path {scope['path']}", code="not_found")
        if not _ID.fullmatch(response_id):
            raise APIError(400, "not a response id", param="response_id", code="invalid_request")
        providers: list[ResponsesPassThrough] = []
        for name, route in rt.routes.items():
            if key is not None and not key.may_use(name):
                continue
            for target in route.targets:
                adapter = rt.adapters[target.state.provider]
                if isinstance(adapter, ResponsesPassThrough) and adapter not in providers:
                    providers.append(adapter)
        if not providers:
            raise APIError(
                400,
                "retrieving a response needs a provider that keeps response state (openai, "
                "openai-compatible, azure-openai); the models this key may use have none",
                param="response_id",
                code="invalid_request",
            )
        try:
            owner = await state.owners.owner(response_id)
        except Unavailable:
            if not admin:  # the same answer whether the id exists or not
                raise APIError(
                    503, "stored responses cannot be looked up now; try again", code="owners_unavailable"
                ) from None
            owner = None
        if key is not None and (owner is None or owner.key != key.name):
            raise _not_found(response_id)
        if owner is not None:  # where it was created first
            providers.sort(key=lambda a: a.name != owner.provider)
        background = owner is not None and owner.background
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        query = urlencode([(k, v) for k, v in pairs if k in _QUERY]).encode()
        failed = False
        for adapter in providers:
            try:
                if background and method == "DELETE":  # its result goes unfetched: meter it now
                    before = await adapter.stored("GET", response_id, b"")
                    if before.status_code == 200:
                        await self._meter(scope, owner, response_id, before.content)
                resp = await adapter.stored(method, response_id + suffix, query)
            except httpx.HTTPError as exc:
                log.warning("retrieving a response from %s failed: %s", adapter.name, type(exc).__name__)
                failed = True
                continue
            if resp.status_code == 404:
                continue
            if resp.status_code in (401, 403):
                failed = True  # the router's credential, refused: never the upstream's message
                continue
            if resp.status_code == 200 and background and suffix != "/input_items":
                await self._meter(scope, owner, response_id, resp.content)
            body = (
                resp.content
                if resp.status_code == 200
                else adapter.error_body(resp.status_code, resp.content)
            )
            await respond(send, resp.status_code, body)
            return
        if failed:
            raise APIError(
                502, "a provider that may hold this response could not be asked", code="upstream_error"
            )
        raise _not_found(response_id)

    async def _meter(self, scope: Scope, owner: Owner | None, response_id: str, body: bytes) -> None:
        """A background response's result, as fetched: once it is final, its tokens
        are counted once (a usage row, metrics, the TPM window) against the key that
        created it. A 503 when the once-only mark cannot be set: a result handed out
        unmetered would be free."""
        assert owner is not None
        usage = final_usage(body)
        if usage is None:
            return
        state = self.state
        try:
            if not await state.owners.claim(response_id):
                return  # counted already, by an earlier fetch here or on another replica
        except Unavailable:
            raise APIError(
                503,
                "the result of a background response cannot be metered now (Redis is unavailable); try again",
                code="metering_unavailable",
            ) from None
        rt = state.runtime
        request_id = str(scope.get(REQUEST_ID, ""))
        keys = [*state.keys.config_keys.values(), *state.keys.db_keys.values()]
        key = next((k for k in keys if k.name == owner.key), None)
        call = Call(
            request_id,
            time.perf_counter(),
            "responses",
            model=owner.model if owner.model in rt.routes else UNKNOWN,
            provider=owner.provider,
            upstream_model=owner.upstream_model,
            key=key or KeyInfo(owner.key, "", Limits()),  # a revoked key's name still carries its spend
            status=200,
            usage=usage,
        )
        accounting.finish(call, rt, state.metrics, state.usage, True)
        if key is not None:
            lease = Lease(key, request_id, state.limiter.redis is not None, False)
            state.limiter.settle(lease, usage.prompt + usage.completion)
            if state.limiter.budget is not None:  # the shared budget account, not only PostgreSQL's sum
                state.limiter.budget.charge(key, call.cost)


def _not_found(response_id: str) -> APIError:
    return APIError(404, f"No response found with id '{response_id}'", param="response_id", code="not_found")


class CountTokens:
    """``POST /v1/messages/count_tokens``: passed to the model's first Anthropic
    target; for a model with none, an estimate (a token per four bytes of the
    request's JSON: the chat providers have no counting endpoint). Nothing is
    generated, so no usage row and no rate limit; the key and its models apply."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except APIError as exc:
            await respond(send, exc.status, exc.body(), exc.headers()[1:])

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        rt = state.runtime
        raw = bearer(scope["headers"])
        key = state.keys.lookup(raw) if raw else None
        if key is None:
            raise APIError(401, "Invalid or missing API key", code="invalid_api_key")
        payload = parse(await read_body(scope, receive, rt.config.server.max_body_bytes), "count_tokens")
        model = payload["model"]
        if model not in rt.routes:
            raise APIError(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        if not key.may_use(model):
            raise APIError(403, f"This key may not use the model '{model}'", param="model")
        if not isinstance(payload.get("messages"), list):
            raise bad_request("'messages' is required and must be a list", "messages")
        tried = False
        for target in rt.routes[model].targets:
            adapter = rt.adapters[target.state.provider]
            if isinstance(adapter, AnthropicAdapter):
                tried = True
                try:
                    resp = await adapter.count_tokens(payload, target.state.upstream_model)
                except httpx.HTTPError as exc:
                    log.warning("counting tokens at %s failed: %s", adapter.name, type(exc).__name__)
                    continue
                if resp.status_code in (401, 403) or resp.status_code >= 500:
                    continue  # never the upstream's message for a refused credential
                body = (
                    resp.content
                    if resp.status_code == 200
                    else adapter.error_body(resp.status_code, resp.content)
                )
                await respond(send, resp.status_code, body)
                return
        if tried:
            raise APIError(
                502, f"no Anthropic provider of '{model}' could count the tokens", code="upstream_error"
            )
        counted = {k: payload.get(k) for k in ("system", "messages", "tools")}
        await respond(send, 200, orjson.dumps({"input_tokens": max(1, len(orjson.dumps(counted)) // 4)}))
