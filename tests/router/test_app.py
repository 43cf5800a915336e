"""Operations: /health, /ready, /metrics names, bad input handling, and the graceful
drain on SIGTERM (an in-flight stream completes, the usage buffer is flushed)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import KEY, StartRouter, base_config, client
from .servers import FakeProvider, Postgres, Router

MSG: Any = [{"role": "user", "content": "hi"}]
AUTH = {"authorization": f"Bearer {KEY}"}

METRICS = [
    "xrouter_requests_total",
    "xrouter_request_duration_seconds",
    "xrouter_upstream_duration_seconds",
    "xrouter_overhead_seconds",
    "xrouter_time_to_first_token_seconds",
    "xrouter_tokens_total",
    "xrouter_cost_usd_total",
    "xrouter_inflight_requests",
    "xrouter_retries_total",
    "xrouter_fallbacks_total",
    "xrouter_breaker_state",
    "xrouter_limit_rejections_total",
    "xrouter_usage_buffer_rows",
    "xrouter_usage_rows_written_total",
    "xrouter_config_reloads_total",
    "xrouter_redis_up",
    "xrouter_database_up",
]


@pytest.fixture
def router(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> Router:
    return start_router(base_config(provider.url, tmp_path))


def test_health_ready_metrics(router: Router) -> None:
    assert httpx.get(router.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(router.url + "/ready").json()
    assert ready["status"] == "ready" and ready["config"] == "loaded"
    assert ready["redis"].startswith("disabled") and ready["database"].startswith("disabled")
    list(client(router).chat.completions.create(model="gpt", messages=MSG, stream=True))
    text = router.metrics()
    for name in METRICS:
        assert f"# HELP {name} " in text, name
    assert router.metric("xrouter_requests_total", model="gpt", provider="fake", status="200") == 1
    assert router.metric("xrouter_time_to_first_token_seconds_count", model="gpt") == 1
    assert router.metric("xrouter_cost_usd_total", model="gpt") > 0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"messages": []}', 400, "model"),
        (b'{"model": "gpt"}', 400, "messages"),
        (b'{"model": "gpt", "messages": [{"role": "wizard", "content": "x"}]}', 400, "messages[0].role"),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content"),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', 400, "stream"),
        (
            b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
            400,
            "max_tokens",
        ),
        (b'{"model": "gpt", "messages": [{"role": "user", "content": "x"}], "tools": [1]}', 400, "tools[0]"),
        (b'{"model": "x" , "messages": [{"role": "user", "content": "x"}]}', 404, "model"),
    ],
)
def test_bad_input_is_a_clear_4xx(router: Router, body: bytes, status: int, param: str | None) -> None:
    r = httpx.post(router.url + "/v1/chat/completions", content=body, headers=AUTH)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["param"] == param and err["message"] and err["type"]
    assert r.headers["x-request-id"]


def test_body_too_large_and_unknown_paths(router: Router) -> None:
    r = httpx.post(router.url + "/v1/chat/completions", content=b"x" * (5 * 1024 * 1024), headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(router.url + "/v2/nothing").status_code == 404
    assert httpx.get(router.url + "/v1/chat/completions").status_code == 405
    r = httpx.post(router.url + "/v1/chat/completions", json={"model": "gpt", "messages": MSG})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_no_secrets_in_logs_or_errors(router: Router) -> None:
    client(router).chat.completions.create(model="gpt", messages=MSG)
    r = httpx.post(
        router.url + "/v1/chat/completions",
        json={"model": "gpt", "messages": MSG},
        headers={"authorization": "Bearer sk-wrong-secret"},
    )
    assert "sk-wrong-secret" not in r.text
    log = router.log()
    for secret in (KEY, "sk-upstream-secret", "sk-wrong-secret"):
        assert secret not in log
    assert '"logger":"xrouter.access"' in log and "hi" not in log.split('"logger":"xrouter.access"')[1][:400]


def test_graceful_drain_on_sigterm(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path, database: tuple[Postgres, str]
) -> None:
    pg, name = database
    config = base_config(
        provider.url,
        tmp_path,
        database={
            "url": {"env": "TEST_DATABASE_URL"},
            "spillDir": str(tmp_path / "spill"),
            "flushIntervalSeconds": 30,
        },
    )
    router = start_router(config, {"TEST_DATABASE_URL": pg.dsn(name)})
    client(router).chat.completions.create(model="echo", messages=MSG)  # sits in the buffer (30 s flush)
    received: list[bytes] = []
    started = threading.Event()

    def stream() -> None:
        with httpx.stream(
            "POST",
            router.url + "/v1/chat/completions",
            headers=AUTH,
            timeout=20,
            json={
                "model": "slowstream",
                "stream": True,
                "messages": [{"role": "user", "content": "a b c d"}],
            },
        ) as resp:
            for chunk in resp.iter_raw():
                received.append(chunk)
                started.set()

    t = threading.Thread(target=stream)
    t.start()
    assert started.wait(5)
    assert router.proc is not None
    router.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.TransportError):  # no longer accepting
        httpx.get(router.url + "/health", timeout=1)
    t.join(15)
    body = b"".join(received)
    assert body.endswith(b"data: [DONE]\n\n")  # the in-flight stream finished
    assert router.proc.wait(15) in (0, -signal.SIGTERM)
    assert pg.sql("SELECT count(*) FROM xrouter_usage WHERE status = 200", name) == "2"  # buffer flushed
