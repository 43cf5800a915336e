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


def test_a_refused_reload_applies_nothing(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    config = base_config(provider.url, tmp_path)
    router = start_router(config)
    # A new route, plus a Redis URL that is refused only when the client is made
    # (after the routes were compiled): the whole reload is refused, the route too.
    (tmp_path / "redis-url").write_text("http://not-a-redis-url")
    changed = dict(config, redis={"url": {"file": str(tmp_path / "redis-url")}})
    changed["models"] = [
        *config["models"],
        {"name": "renamed", "targets": [{"provider": "mock", "model": "e"}]},
    ]
    router.write_config(changed)
    _wait_metric(router, "failure", 1)
    assert "config reload refused" in router.log() and "not-a-redis-url" not in router.log()
    with pytest.raises(openai.NotFoundError):
        client(router).chat.completions.create(model="renamed", messages=MSG)
    assert router.metric("xrouter_config_reloads_total", result="success") == 0


def _project_secret(mount: Path, files: dict[str, str]) -> None:
    """Write a Secret volume the way the kubelet does: the files live in a timestamped
    directory, ``..data`` points at it, and each key is a symlink through ``..data``.
    An update writes a new directory and swaps ``..data`` with one atomic rename."""
    mount.mkdir(exist_ok=True)
    version = mount / f"..{time.time_ns()}"
    version.mkdir()
    for name, value in files.items():
        (version / name).write_text(value)
    tmp = mount / "..data_tmp"
    tmp.symlink_to(version.name)
    old = (mount / "..data").resolve() if (mount / "..data").exists() else None
    tmp.replace(mount / "..data")
    for name in files:
        if not (mount / name).is_symlink():
            (mount / name).symlink_to(f"..data/{name}")
    if old is not None:
        for f in old.iterdir():
            f.unlink()
        old.rmdir()


def test_secret_files_rotate_without_restart(
    start_router: StartRouter, provider: FakeProvider, tmp_path: Path
) -> None:
    mount = tmp_path / "secrets"
    _project_secret(mount, {"client-key": "sk-client-old", "provider-key": "sk-upstream-old"})
    config = base_config(provider.url, tmp_path)
    config["providers"][0]["apiKey"] = {"file": str(mount / "provider-key")}
    config["keys"][0]["secret"] = {"file": str(mount / "client-key")}
    router = start_router(config)
    pid = router.proc.pid if router.proc else None
    client(router, "sk-client-old").chat.completions.create(model="gpt", messages=MSG)
    assert provider.last()["headers"]["authorization"] == "Bearer sk-upstream-old"

    _project_secret(mount, {"client-key": "sk-client-new", "provider-key": "sk-upstream-new"})
    _wait_metric(router, "success", 1)
    with pytest.raises(openai.AuthenticationError):
        client(router, "sk-client-old").chat.completions.create(model="gpt", messages=MSG)
    out = client(router, "sk-client-new").chat.completions.create(model="gpt", messages=MSG)
    assert out.choices[0].message.content
    assert provider.last()["headers"]["authorization"] == "Bearer sk-upstream-new"
    assert router.proc is not None and router.proc.pid == pid and router.proc.poll() is None
    log = router.log()
    assert "sk-client-" not in log and "sk-upstream-" not in log
    # A Secret whose key disappears is refused like a bad config; the running keys stay.
    _project_secret(mount, {"provider-key": "sk-upstream-new"})
    (mount / "client-key").unlink()
    _wait_metric(router, "failure", 1)
    assert client(router, "sk-client-new").chat.completions.create(model="gpt", messages=MSG).choices
