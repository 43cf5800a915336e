"""The admin API for database keys: create, list, set limits, revoke."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import ADMIN, StartRouter, base_config, client
from .servers import FakeProvider, Postgres

MSG: Any = [{"role": "user", "content": "hi"}]
ADMIN_AUTH = {"authorization": f"Bearer {ADMIN}"}


def test_key_lifecycle(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = base_config(
        provider.url,
        tmp_path,
        adminKey={"env": "ADMIN_KEY"},
        database={"url": {"env": "TEST_DATABASE_URL"}, "spillDir": str(tmp_path / "spill")},
    )
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    admin = httpx.Client(base_url=router.url, headers=ADMIN_AUTH)

    assert httpx.get(router.url + "/admin/keys", headers={"authorization": "Bearer nope"}).status_code == 401
    bad = admin.post("/admin/keys", json={"name": "team a", "limits": {}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
    bad = admin.post("/admin/keys", json={"name": "team-a", "limits": {"rpm": -1}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limits.rpm"
    assert admin.post("/admin/keys", json={"name": "alpha"}).status_code == 409  # a config key's name

    created = admin.post("/admin/keys", json={"name": "team-a", "limits": {"allowedModels": ["echo"]}})
    assert created.status_code == 201
    key = created.json()["key"]
    assert admin.post("/admin/keys", json={"name": "team-a"}).status_code == 409

    out = client(router, key).chat.completions.create(model="echo", messages=MSG)
    assert out.choices[0].message.content == "hi"
    with pytest.raises(openai.PermissionDeniedError):
        client(router, key).chat.completions.create(model="gpt", messages=MSG)
    listed = admin.get("/admin/keys").json()["data"]
    assert [k["name"] for k in listed] == ["team-a"] and "key" not in listed[0] and "sha256" not in listed[0]
    assert key not in pg.sql("SELECT string_agg(sha256, ',') FROM xrouter_keys", name)

    assert admin.patch("/admin/keys/team-a", json={"limits": {"allowedModels": ["gpt"]}}).status_code == 200
    client(router, key).chat.completions.create(model="gpt", messages=MSG)

    assert admin.delete("/admin/keys/team-a").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        client(router, key).chat.completions.create(model="gpt", messages=MSG)
    assert admin.delete("/admin/keys/team-a").status_code == 404
    assert key not in router.log()


def test_admin_disabled_without_admin_key(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    router = start_router(base_config(provider.url, tmp_path))
    assert httpx.get(router.url + "/admin/keys", headers=ADMIN_AUTH).status_code == 404


def test_a_config_key_named_like_a_database_key_wins(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = base_config(
        provider.url,
        tmp_path,
        adminKey={"env": "ADMIN_KEY"},
        database={"url": {"env": "TEST_DATABASE_URL"}, "spillDir": str(tmp_path / "spill")},
    )
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name), "KEY_DELTA": "sk-test-delta"})
    admin = httpx.Client(base_url=router.url, headers=ADMIN_AUTH)
    created = admin.post("/admin/keys", json={"name": "delta"})
    assert created.status_code == 201
    db_key = created.json()["key"]
    client(router, db_key).chat.completions.create(model="echo", messages=MSG)

    # The operator adds a config key of the same name: it wins; the database key,
    # which would share its limits, budget and cache, is refused from then on.
    config["keys"].append({"name": "delta", "secret": {"env": "KEY_DELTA"}})
    router.write_config(config)
    deadline = time.monotonic() + 5
    while router.metric("xrouter_config_reloads_total", result="success") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(openai.AuthenticationError):
        client(router, db_key).chat.completions.create(model="echo", messages=MSG)
    client(router, "sk-test-delta").chat.completions.create(model="echo", messages=MSG)
    log = router.log()
    assert "named like a config key are refused until renamed or revoked: delta" in log
    assert db_key not in log and "sk-test-delta" not in log
