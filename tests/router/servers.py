"""Real servers for the router tests, on free loopback ports: redis-server, PostgreSQL,
the fake provider and router processes. Each can be stopped and started again."""

from __future__ import annotations

import glob
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from xrouter_dev.procs import stop
from xrouter_dev.tools import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server not installed: run `make deps` (hack/install-deps.sh)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_port(self.port, proc=self.proc)

    def stop(self) -> None:
        stop(self.proc)


class Postgres:
    """A throwaway cluster, initdb'd into a temp dir and run as the postgres user
    (we may be root, and PostgreSQL refuses to run as root)."""

    def __init__(self, initdb: bool = True) -> None:
        """``initdb=False``: an empty data directory, for a replica's base backup."""
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL not installed: run `make deps` (hack/install-deps.sh)")
        self.bin = Path(bins[-1])
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="xrouter-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"  # each start appends; a failing test shows it
        self.proc: subprocess.Popen[bytes] | None = None
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user)
        if initdb:
            self._run(
                [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "xrouter", "-E", "UTF8"]
            )

    def _run(self, cmd: list[str]) -> None:
        subprocess.run(
            cmd,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=self.user,
            cwd=self.dir,
        )

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://xrouter@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        cmd = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, user=self.user, cwd=self.dir
            )
        wait_port(self.port, proc=self.proc)
        time.sleep(0.3)

    def stop(self) -> None:
        # SIGINT: "fast" shutdown, which ends open sessions at once, as an outage would.
        stop(self.proc, sig=signal.SIGINT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def sql(self, query: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [str(self.bin / "psql"), "-At", "-v", "ON_ERROR_STOP=1", self.dsn(db), "-c", query],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeProvider:
    module = "xrouter_dev.fake_provider"  # the other fakes (fake_bedrock, fake_google) subclass this

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        return []

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "hack")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self.port), *self.args()], env=env
        )
        wait_port(self.port, proc=self.proc)

    def stop(self) -> None:
        stop(self.proc)

    def stats(self) -> dict[str, int]:
        data: dict[str, int] = httpx.get(self.url + "/_stats").json()
        return data

    def last(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/_last").json()
        return data

    def reset(self) -> None:
        httpx.post(self.url + "/_reset")


class Router:
    """``xrouter-router`` in a subprocess, with its config in a temp file."""

    def __init__(
        self, config: dict[str, Any], env: dict[str, str] | None = None, workdir: Path | None = None
    ):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="xrouter-router-"))
        # One file per router: routers sharing a workdir would otherwise reload each other's.
        self.config_path = self.dir / f"config-{self.port}.yaml"
        self.log_path = self.dir / f"router-{self.port}.log"
        self.env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        self.env.update(env or {})
        self.write_config(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        tmp.replace(self.config_path)

    def start(self, wait: bool = True) -> None:
        exe = Path(sys.executable).parent / "xrouter-router"
        cmd = [str(exe), "--config", str(self.config_path), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT
        )
        if wait:
            try:
                wait_port(self.port, proc=self.proc)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"router did not start: {exc}\n{self.log()[-3000:]}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        return stop(self.proc, sig=sig, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics").text

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
        return total


class LoopbackHTTP:
    """A threaded HTTP server for a test's own handler, on a free loopback port; its
    subclasses define the handler in ``__init__`` and call this last."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ScriptedUpstream(LoopbackHTTP):
    """A provider that misbehaves on purpose, in a thread of the test process (on
    loopback). The requested model picks the behaviour:

    - ``refuse-401``/``refuse-403``: refuses the router's credential, quoting it;
    - ``garbage``: 200 with a body that is not JSON;
    - ``hangup``: reads the request and closes the connection without a word;
    - ``trickle-<ms>``: a chat stream whose first event comes at once and the next
      ones ``<ms>`` apart;
    - ``rich``: a chat stream whose chunks carry ``reasoning_content``, ``logprobs`` and
      ``annotations``, one of them a choice without ``index`` (a plain completion
      when not streamed);
    - ``ctx-openai``/``ctx-anthropic``: 400, the prompt is too long, as OpenAI (and
      Azure) or Anthropic say it; ``bad-400``: 400 for another reason;
    - ``quota-<n>``: allows n requests, counting down in ``x-ratelimit-remaining-requests``
      (reset in 30 s), then 429 with ``retry-after: 30`` (counted in ``refused``);
    - ``cookie``: "ok", setting a cookie (``session=caller-<n>``) as a load balancer's
      affinity would; the Cookie header each such request came with is in ``cookies``;
    - anything else: a normal chat completion answering "ok".

    A model the test puts in ``failing`` gets a 500 instead, until it is taken out.
    """

    QUOTED = "Incorrect API key provided: sk-upstream-secret"

    def __init__(self) -> None:
        from collections import Counter

        self.stats: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.cookies: list[str | None] = []  # the Cookie header of each "cookie" request
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                model = str(body.get("model", ""))
                outer.stats[model] += 1
                if model in outer.failing:
                    self._send(
                        500, json.dumps({"error": {"message": "down", "type": "server_error"}}).encode()
                    )
                elif model.startswith("refuse-"):
                    status = int(model.split("-")[1])
                    self._send(status, json.dumps({"error": {"message": outer.QUOTED}}).encode())
                elif model in _REFUSALS:
                    self._send(400, json.dumps(_REFUSALS[model]).encode())
                elif model == "hangup":
                    self.close_connection = True  # nothing sent: the connection just closes
                elif model == "garbage":
                    self._send(200, b"<html>502 Bad Gateway</html>", "text/html")
                elif model == "rich" and body.get("stream"):
                    self._events(_RICH_STREAM)
                elif model.startswith("trickle-"):
                    self._trickle(int(model.split("-")[1]) / 1000, model)
                elif model.startswith("quota-"):
                    self._quota(model, int(model.split("-")[1]) - outer.stats[model] + 1)
                elif model == "cookie":
                    outer.cookies.append(self.headers.get("cookie"))
                    n = len(outer.cookies)
                    headers = {"set-cookie": f"session=caller-{n}; Path=/"}
                    self._send(200, json.dumps(_completion(model, "ok")).encode(), headers=headers)
                else:
                    self._send(200, json.dumps(_completion(model, "ok")).encode())

            def _quota(self, model: str, left: int) -> None:
                if left <= 0:
                    outer.refused[model] += 1
                    body = json.dumps({"error": {"message": "Rate limit reached"}}).encode()
                    self._send(429, body, headers={"retry-after": "30"})
                    return
                headers = {
                    "x-ratelimit-remaining-requests": str(left - 1),
                    "x-ratelimit-reset-requests": "30s",
                }
                self._send(200, json.dumps(_completion(model, model)).encode(), headers=headers)

            def _send(
                self,
                status: int,
                data: bytes,
                ctype: str = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _events(self, chunks: list[Any]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                for chunk in chunks:
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")

            def _trickle(self, gap: float, model: str) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.close_connection = True
                words = ["one", " two", " three", " four"]
                for i, word in enumerate(words):
                    if i:
                        time.sleep(gap)
                    chunk = {
                        "id": "c1",
                        "object": "chat.completion.chunk",
                        "created": 0,
                        "model": model,
                        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                    }
                    try:
                        self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                        self.wfile.flush()
                    except OSError:  # the router gave up on us: that is the point of some tests
                        return
                self.wfile.write(b"data: [DONE]\n\n")

        LoopbackHTTP.__init__(self, Handler)


_HEAD = {"id": "chatcmpl-rich", "object": "chat.completion.chunk", "created": 0, "model": "rich"}
_LOGPROBS = {"content": [{"token": "ok", "logprob": -0.1, "bytes": [111, 107], "top_logprobs": []}]}
_CITE = {"url": "https://example.com/", "title": "e", "start_index": 0, "end_index": 2}
_RICH_STREAM: list[Any] = [
    {**_HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "think"}}]},
    {**_HEAD, "choices": [{"delta": {"content": "ok"}, "logprobs": _LOGPROBS, "finish_reason": None}]},
    {
        **_HEAD,
        "choices": [
            {
                "index": 0,
                "delta": {"annotations": [{"type": "url_citation", "url_citation": _CITE}]},
                "finish_reason": "stop",
            }
        ],
    },
]

_REFUSALS: dict[str, Any] = {
    "ctx-openai": {
        "error": {
            "message": "This model's maximum context length is 8192 tokens. However, your messages"
            " resulted in 9000 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    },
    "ctx-anthropic": {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 210000 tokens > 200000 maximum",
        },
    },
    "bad-400": {
        "error": {
            "message": "temperature must be at most 2",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    },
}


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
