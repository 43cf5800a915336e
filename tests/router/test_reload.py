"""Config hot reload: a valid change applies without a restart or a dropped request;
an invalid one is refused, logged and counted, and the old config keeps serving."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .conftest import KEY, StartRouter, base_config, client
from .servers import FakeProvider, Router

MSG: Any = [{"role": "user", "content": "hi"}]


def _wait_metric(router: Router, result: str, value: float, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while router.metric("xrouter_config_reloads_total", result=result) < value:
        assert time.monotonic() < deadline, f"no reload {result} counted"
        time.sleep(0.1)


def test_valid_reload_without_dropping_requests(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    config = base_config(provider.url, tmp_path)
    router = start_router(config)
    pid = router.proc.pid if router.proc else None
    with pytest.raises(openai.NotFoundError):
        client(router).chat.completions.create(model="renamed", messages=MSG)

    failures: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as http:
            while not stop.is_set():
                r = http.post(router.url + "/v1/chat/completions", json={"model": "echo", "messages": MSG})
                if r.status_code != 200:
                    failures.append(r.status_code)

    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    config["models"].append({"name": "renamed", "targets": [{"provider": "mock", "model": "echo-2"}]})
    router.write_config(config)
    _wait_metric(router, "success", 1)
    time.sleep(0.5)
    stop.set()
    t.join()
    assert failures == []
    out = client(router).chat.completions.create(model="renamed", messages=MSG)
    assert out.model == "echo-2"
    assert router.proc is not None and router.proc.pid == pid and router.proc.poll() is None


def test_invalid_reload_is_refused(start_router: StartRouter, provider: FakeProvider, tmp_path: Path) -> None:
    config = base_config(provider.url, tmp_path)
    router = start_router(config)
    broken = dict(config, models=[{"name": "x", "targets": [{"provider": "nope", "model": "m"}]}])
    router.write_config(broken)
    _wait_metric(router, "failure", 1)
    assert "config reload refused" in router.log()
    assert (
        client(router).chat.completions.create(model="echo", messages=MSG).choices[0].message.content == "hi"
    )
    # Not YAML at all, and a secret that cannot be read: both refused too.
    router.config_path.write_text("providers: [")
    _wait_metric(router, "failure", 2)
    missing = base_config(provider.url, tmp_path)
    missing["keys"][0]["secret"] = {"env": "NOT_SET_ANYWHERE"}
    router.write_config(missing)
    _wait_metric(router, "failure", 3)
    assert (
        client(router).chat.completions.create(model="echo", messages=MSG).choices[0].message.content == "hi"
    )
    assert router.metric("xrouter_config_reloads_total", result="success") == 0
