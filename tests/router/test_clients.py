"""The upstream clients (clients.py): how a failed connection reads to the router."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from .conftest import KEY, StartRouter, base_config
from .servers import ScriptedUpstream


def _ask(url: str) -> httpx.Response:
    """One chat request for the model ``m`` to the router at ``url``."""
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_an_upstream_that_hangs_up_is_a_failed_upstream(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    """An upstream that closes the connection without answering failed (502); it did
    not time out (504), which is what httpx-aiohttp's error mapping made of it."""
    config = base_config(scripted.url, tmp_path)
    config["providers"] = [
        {"name": "hangup", "type": "openai-compatible", "baseUrl": scripted.url + "/v1", "maxRetries": 0}
    ]
    config["models"] = [{"name": "m", "targets": [{"provider": "hangup", "model": "hangup"}]}]
    config["keys"] = config["keys"][:1]
    router = start_router(config)
    began = time.perf_counter()
    resp = _ask(router.url)
    assert resp.status_code == 502, resp.text
    message = resp.json()["error"]["message"]
    assert "timed out" not in message and "hangup" in message, message
    assert time.perf_counter() - began < 5
    # Nothing listening at all: also a failed upstream, not a timeout.
    config["providers"][0]["baseUrl"] = "http://127.0.0.1:9/v1"
    router.write_config(config)
    router.stop()
    router.start()
    resp = _ask(router.url)
    assert resp.status_code == 502, resp.text


def test_a_cookie_one_answer_sets_rides_on_no_later_request(
    start_router: StartRouter, scripted: ScriptedUpstream, tmp_path: Path
) -> None:
    """The clients are shared by every caller: what an upstream's answer to one request
    set (a session, an affinity cookie) must not go out with the next request, which may
    be someone else's. The upstream is addressed by name (``localhost``): aiohttp's jar
    keeps no cookies from a bare IP address, so an IP would hide the leak."""
    config = base_config(scripted.url, tmp_path)
    by_name = scripted.url.replace("127.0.0.1", "localhost") + "/v1"
    config["providers"] = [{"name": "named", "type": "openai-compatible", "baseUrl": by_name}]
    config["models"] = [{"name": "m", "targets": [{"provider": "named", "model": "cookie"}]}]
    config["keys"] = config["keys"][:1]
    router = start_router(config)
    for _ in range(3):
        resp = _ask(router.url)
        assert resp.status_code == 200, resp.text
    assert scripted.cookies == [None, None, None]
