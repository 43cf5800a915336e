"""The admin API for database keys, under the admin key:

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
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from . import db
from .asgi import Receive, Scope, Send, read_body, respond_json
from .auth import bearer, hash_key
from .config import Limits
from .errors import APIError, bad_request

if TYPE_CHECKING:
    from .app import App

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _limits(data: Any) -> dict[str, Any]:
    try:
        limits = Limits.model_validate(data or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise bad_request(f"limits.{field}: {err['msg']}", f"limits.{field}") from None
    return limits.model_dump(mode="json", by_alias=True, exclude_none=True)


async def handle(app: App, scope: Scope, receive: Receive, send: Send) -> None:
    rt = app.runtime
    raw = bearer(scope["headers"])
    if rt.admin_sha256 is None:
        raise APIError(404, "The admin API is disabled (no adminKey in the config)")
    if raw is None or not hmac.compare_digest(hash_key(raw), rt.admin_sha256):
        raise APIError(401, "Invalid admin key", code="invalid_api_key")
    pool = app.usage.pool
    if pool is None:
        raise APIError(503, "The admin API needs the database")
    method, path = scope["method"], scope["path"].rstrip("/")
    if path == "/admin/keys" and method == "GET":
        await respond_json(send, 200, {"object": "list", "data": await db.list_keys(pool)})
        return
    body = await read_body(scope, receive, 64 * 1024) if method in ("POST", "PATCH") else b""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    if path == "/admin/keys" and method == "POST":
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise bad_request("'name' must be 1-63 letters, digits, '.', '_' or '-'", "name")
        limits = _limits(data.get("limits"))
        if name in app.keys.names():
            raise APIError(409, f"a config key is already named {name!r}", param="name")
        key = "sk-xr-" + secrets.token_urlsafe(32)
        if not await db.create_key(pool, name, hash_key(key), limits):
            raise APIError(409, f"a key named {name!r} already exists", param="name")
        await app.refresh_db_keys()
        await respond_json(send, 201, {"name": name, "key": key, "limits": limits})
        return
    name = path.removeprefix("/admin/keys/")
    if path.startswith("/admin/keys/") and method == "DELETE":
        if not await db.revoke_key(pool, name):
            raise APIError(404, f"no active key named {name!r}")
        await app.refresh_db_keys()
        await respond_json(send, 200, {"name": name, "revoked": True})
        return
    if path.startswith("/admin/keys/") and method == "PATCH":
        limits = _limits(data.get("limits"))
        if not await db.set_limits(pool, name, limits):
            raise APIError(404, f"no active key named {name!r}")
        await app.refresh_db_keys()
        await respond_json(send, 200, {"name": name, "limits": limits})
        return
    raise APIError(404, f"no admin route {method} {path}")
