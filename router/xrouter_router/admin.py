"""The admin API for database keys, under the admin key, on Starlette's
Request/Response:

- ``POST /admin/keys`` ``{"name", "limits"?}`` creates a key and returns it once;
- ``GET /admin/keys`` lists keys (never their secrets);
- ``PATCH /admin/keys/{name}`` ``{"limits"}`` sets its limits;
- ``DELETE /admin/keys/{name}`` revokes it.

Changes take effect at once on this replica and within the key refresh interval on
the others.
"""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .auth import bearer, hash_key
from .config import Limits
from .endpoints import json_response
from .errors import APIError, bad_request
from .ledger import db
from .state import State

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_BODY = 64 * 1024


def _limits(data: Any) -> dict[str, Any]:
    try:
        limits = Limits.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise bad_request(f"limits.{field}: {err['msg']}", f"limits.{field}") from None
    return limits.model_dump(mode="json", by_alias=True, exclude_none=True)


async def _json(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise APIError(413, f"request body exceeds {MAX_BODY} bytes", code="body_too_large")
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    return data


class Admin:
    def __init__(self, state: State) -> None:
        self.state = state

    def _pool(self, request: Request) -> asyncpg.Pool:
        rt = self.state.runtime
        if rt.admin_sha256 is None:
            raise APIError(404, "The admin API is disabled (no adminKey in the config)")
        raw = bearer(request.scope["headers"])
        if raw is None or not hmac.compare_digest(hash_key(raw), rt.admin_sha256):
            raise APIError(401, "Invalid admin key", code="invalid_api_key")
        pool = self.state.usage.pool
        if pool is None:
            raise APIError(503, "The admin API needs the database")
        return pool

    async def keys(self, request: Request) -> Response:
        """``GET`` lists the keys, ``POST`` creates one."""
        pool = self._pool(request)
        if request.method == "GET":
            return json_response(200, {"object": "list", "data": await db.list_keys(pool)})
        data = await _json(request)
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad_request("'name' must be 1-63 letters, digits, '.', '_' or '-'", "name")
        limits = _limits(data.get("limits"))
        if name in self.state.keys.names():
            raise APIError(409, f"a config key is already named {name!r}", param="name")
        key = "sk-xr-" + secrets.token_urlsafe(32)
        if not await db.create_key(pool, name, hash_key(key), limits):
            raise APIError(409, f"a key named {name!r} already exists", param="name")
        await self.state.refresh_db_keys()
        return json_response(201, {"name": name, "key": key, "limits": limits})

    async def key(self, request: Request) -> Response:
        """``PATCH`` sets a key's limits, ``DELETE`` revokes it."""
        pool = self._pool(request)
        name = request.path_params["name"]
        if request.method == "DELETE":
            if not await db.revoke_key(pool, name):
                raise APIError(404, f"no active key named {name!r}")
            await self.state.refresh_db_keys()
            return json_response(200, {"name": name, "revoked": True})
        limits = _limits((await _json(request)).get("limits"))
        if not await db.set_limits(pool, name, limits):
            raise APIError(404, f"no active key named {name!r}")
        await self.state.refresh_db_keys()
        return json_response(200, {"name": name, "limits": limits})
