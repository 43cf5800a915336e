"""Side-by-side throughput and added latency: nginx direct, XRouter, LiteLLM proxy.

One static nginx upstream on loopback serves a canned chat completion. wrk drives
each server in turn with the same POST: requests/s at 32 connections, and latency
p50/p99 at 1 connection (added latency = server's minus nginx-direct's).

XRouter runs with 1 worker and everything on: key auth, Redis limits (RPM and TPM,
leased from Redis in blocks), usage rows to PostgreSQL, one JSON log line per
request (to a file). LiteLLM's
proxy (pinned, installed from PyPI into its own venv) runs with 1 worker and a
master key.

    python bench/router_bench.py [--duration 10] [--skip-litellm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from router.servers import Postgres, RedisServer, free_port, wait_port  # noqa: E402
from xrouter_dev import procs  # noqa: E402

LITELLM = "litellm[proxy]==1.106.0"  # 1.106.10 needs a certifi newer than PyPI has here
VENV = Path.home() / ".cache" / "xrouter" / "bench-venv"
KEY = "sk-bench-key"
CANNED = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-up",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from nginx."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
)
BODY = json.dumps(
    {"model": "bench", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
)


def ensure_debs() -> None:
    missing = [
        p
        for p, exe in (("wrk", "wrk"), ("nginx", "nginx"))
        if not shutil.which(exe) and not Path(f"/usr/sbin/{exe}").exists()
    ]
    if missing:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "-qq", *missing],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )


def ensure_litellm() -> Path:
    exe = VENV / "bin" / "litellm"
    stamp = VENV / ".pinned"
    if exe.exists() and stamp.exists() and stamp.read_text() == LITELLM:
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", LITELLM], check=True)
    stamp.write_text(LITELLM)
    return exe


def start_nginx(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    body = CANNED.replace("'", "\\'")
    (tmp / "nginx.conf").write_text(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      default_type application/json;
      return 200 '{body}';
    }}
  }}
}}
""")
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([exe, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    wait_port(port, proc=proc)
    return proc, port


def wrk(url: str, connections: int, duration: int, tmp: Path, auth: str | None) -> dict[str, float]:
    script = tmp / "post.lua"
    headers = 'wrk.headers["Content-Type"] = "application/json"\n'
    if auth:
        headers += f'wrk.headers["Authorization"] = "Bearer {auth}"\n'
    script.write_text(f'wrk.method = "POST"\nwrk.body = [[{BODY}]]\n{headers}')
    threads = 1 if connections == 1 else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: _ms(m) for p, m in re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M)}
    return {
        "rps": rps,
        "p50": lat.get("50", 0.0),
        "p99": lat.get("99", 0.0),
        "errors": float(errors.group(1)) if errors else 0.0,
    }


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def measure(name: str, url: str, duration: int, tmp: Path, auth: str | None) -> dict[str, Any]:
    wrk(url, 8, 2, tmp, auth)  # warm up connection pools and code paths
    many = wrk(url, 32, duration, tmp, auth)
    # Let the server finish the throughput run's after-work (XRouter writes that run's
    # last second of usage rows, ~4,000, to PostgreSQL) so it does not land in the
    # first tenth of a second of the latency run and set its p99.
    time.sleep(2)
    one = wrk(url, 1, duration, tmp, auth)
    result = {
        "server": name,
        "rps32": many["rps"],
        "p50_1": one["p50"],
        "p99_1": one["p99"],
        "errors": many["errors"] + one["errors"],
    }
    print(f"  {name}: {result}", flush=True)
    return result


def start_router(
    tmp: Path, upstream: str, redis: RedisServer, pg: Postgres
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = {
        "providers": [{"name": "nginx", "type": "openai-compatible", "baseUrl": upstream + "/v1"}],
        "models": [{"name": "bench", "targets": [{"provider": "nginx", "model": "bench-up"}]}],
        "keys": [
            {
                "name": "bench",
                "secret": {"env": "BENCH_KEY"},
                "limits": {"rpm": 100_000_000, "tpm": 1_000_000_000},
            }
        ],
        "prices": {"bench-up": {"input": 1.0, "output": 2.0}},
        "database": {"spillDir": str(tmp / "spill")},
    }
    (tmp / "router.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "BENCH_KEY": KEY,
        "REDIS_URL": redis.url,
        "DATABASE_URL": pg.dsn(),
        "XROUTER_LOG_LEVEL": "INFO",
    }
    exe = Path(sys.executable).parent / "xrouter-router"
    proc = subprocess.Popen(
        [str(exe), "--config", str(tmp / "router.json"), "--port", str(port), "--workers", "1"],
        env=env,
        stdout=(tmp / "router.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(port, proc=proc)
    return proc, port


def start_litellm(tmp: Path, upstream: str) -> tuple[subprocess.Popen[bytes], int]:
    exe = ensure_litellm()
    port = free_port()
    (tmp / "litellm.yaml").write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/bench-up\n"
        f"      api_base: {upstream}/v1\n"
        "      api_key: sk-upstream\n"
        "general_settings:\n"
        f"  master_key: {KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {**os.environ, "LITELLM_LOG": "ERROR", "DISABLE_SCHEMA_UPDATE": "true"}
    proc = subprocess.Popen(
        [
            str(exe),
            "--config",
            str(tmp / "litellm.yaml"),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        env=env,
        stdout=(tmp / "litellm.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_port(port, timeout=120, proc=proc)
    time.sleep(2)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    procs.stop(proc, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--skip-litellm", action="store_true")
    args = parser.parse_args()
    ensure_debs()
    tmp = Path(tempfile.mkdtemp(prefix="xrouter-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    redis, pg = RedisServer(), Postgres()
    results = []
    try:
        nginx, nginx_port = start_nginx(tmp)
        procs.append(nginx)
        upstream = f"http://127.0.0.1:{nginx_port}"
        path = "/v1/chat/completions"
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"wrk {args.duration}s per run",
            flush=True,
        )
        results.append(measure("nginx direct", upstream + path, args.duration, tmp, None))
        redis.start()
        pg.start()
        router, router_port = start_router(tmp, upstream, redis, pg)
        procs.append(router)
        results.append(
            measure(
                "xrouter (1 worker, auth+redis limits+usage)",
                f"http://127.0.0.1:{router_port}{path}",
                args.duration,
                tmp,
                KEY,
            )
        )
        time.sleep(2)  # one flush interval and then some
        rows = pg.sql("SELECT count(*) FROM xrouter_usage")
        print(f"  usage rows written by xrouter: {rows}", flush=True)
        stop(router)
        procs.remove(router)
        if not args.skip_litellm:
            litellm, litellm_port = start_litellm(tmp, upstream)
            procs.append(litellm)
            results.append(
                measure(
                    f"litellm {LITELLM.split('==')[1]} (1 worker)",
                    f"http://127.0.0.1:{litellm_port}{path}",
                    args.duration,
                    tmp,
                    KEY,
                )
            )
    finally:
        for p in procs:
            stop(p)
        redis.stop()
        pg.stop()
        pg.cleanup()
    report(results)
    shutil.rmtree(tmp, ignore_errors=True)


def report(results: list[dict[str, Any]]) -> None:
    base = results[0]
    print()
    print("| server | req/s @32 conns | p50 @1 conn | p99 @1 conn | added p50 | added p99 | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        added50 = r["p50_1"] - base["p50_1"]
        added99 = r["p99_1"] - base["p99_1"]
        print(
            f"| {r['server']} | {r['rps32']:,.0f} | {r['p50_1']:.3f} ms | {r['p99_1']:.3f} ms | "
            f"{added50:.3f} ms | {added99:.3f} ms | {r['errors']:.0f} |"
        )
    print()
    names = {r["server"].split(" ")[0]: r for r in results}
    if "xrouter" in names:
        x = names["xrouter"]
        print(f"xrouter / nginx throughput: {x['rps32'] / base['rps32']:.2f}")
        if "litellm" in names:
            lite = names["litellm"]
            print(f"xrouter / litellm throughput: {x['rps32'] / max(lite['rps32'], 1e-9):.1f}x")
            lite_added = max(lite["p50_1"] - base["p50_1"], 1e-9)
            print(
                f"litellm / xrouter added p50 latency: "
                f"{lite_added / max(x['p50_1'] - base['p50_1'], 1e-9):.1f}x"
            )


if __name__ == "__main__":
    main()
