"""Side-by-side throughput and added latency: nginx direct, XRouter before and
after (the code at ``--before``, default 54f51b1, and this checkout), LiteLLM proxy.

One static nginx upstream on loopback serves a canned chat completion. wrk drives
each server in turn with the same POST: requests/s at 32 connections, and latency
p50/p99 at 1 connection (added latency = server's minus nginx-direct's).

XRouter runs with 1 worker and everything on: key auth, Redis limits (RPM and TPM,
leased from Redis in blocks), usage rows to PostgreSQL, one JSON log line per
request (to a file). The "before" router is the same program from an exported copy
of the ``--before`` commit (``git archive``), run from this venv with that copy
first on ``PYTHONPATH``. LiteLLM's proxy (pinned, installed from PyPI into its own
venv) runs with 1 worker and a master key.

More cases of this checkout (``--skip-features`` leaves them out, ``--features``
picks some): telemetry on (OpenTelemetry spans exported over OTLP/HTTP to a sink on
loopback that answers 200), the route's response cache on, where every request after
the first is a hit, and a budgeted key (``budgetUsd`` far above what the run spends:
each request reserves and settles in Redis). Telemetry off, cache off and no budget
is the "after" case.

    python bench/router_bench.py [--duration 10] [--before REF] [--skip-before] [--skip-litellm]
        [--skip-features | --features telemetry,cache,budget]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from router.servers import Postgres, RedisServer, free_port, wait_port  # noqa: E402
from xrouter_dev import procs  # noqa: E402

BEFORE = "54f51b1"  # the last commit on aiohttp directly, before Starlette + httpx
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    name: str, url: str, duration: int, tmp: Path, auth: str | None, pid: int | None = None
) -> dict[str, Any]:
    load = os.getloadavg()[0]
    wrk(url, 8, 2, tmp, auth)  # warm up connection pools and code paths
    cpu = cpu_seconds(pid) if pid else 0.0
    many = wrk(url, 32, duration, tmp, auth)
    # CPU per request: what the server spent, whatever else the shared machine ran.
    cpu_us = (cpu_seconds(pid) - cpu) / max(many["rps"] * duration, 1) * 1e6 if pid else 0.0
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
        "load": load,
        "cpu_us": cpu_us,
    }
    print(f"  {name}: {result}", flush=True)
    return result


def export(ref: str, tmp: Path) -> Path:
    """The router package as of ``ref``, exported into ``tmp``; the dir for PYTHONPATH."""
    dest = tmp / f"before-{ref}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "router"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "router"


def start_otlp_sink() -> tuple[http.server.ThreadingHTTPServer, str]:
    """An OTLP/HTTP endpoint on loopback that reads each export and answers 200."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def start_router(
    tmp: Path,
    upstream: str,
    redis: RedisServer,
    pg: Postgres,
    db: str,
    code: Path | None = None,
    cache: bool = False,
    extra_env: dict[str, str] | None = None,
    budget: bool = False,
) -> tuple[subprocess.Popen[bytes], int]:
    """``xrouter-router`` from this venv; ``code``: a router package dir to run instead;
    ``cache``: the route caches answers (in Redis); ``extra_env``: e.g. OTEL_*;
    ``budget``: the key has a budget (never reached)."""
    port = free_port()
    model: dict[str, Any] = {"name": "bench", "targets": [{"provider": "nginx", "model": "bench-up"}]}
    if cache:
        model["cache"] = {"ttlSeconds": 3600}
    config = {
        "providers": [{"name": "nginx", "type": "openai-compatible", "baseUrl": upstream + "/v1"}],
        "models": [model],
        "keys": [
            {
                "name": "bench",
                "secret": {"env": "BENCH_KEY"},
                "limits": {
                    "rpm": 100_000_000,
                    "tpm": 1_000_000_000,
                    **({"budgetUsd": 1_000_000.0} if budget else {}),
                },
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
        "DATABASE_URL": pg.dsn(db),
        "XROUTER_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), *filter(None, [os.environ.get("PYTHONPATH")])])
    exe = Path(sys.executable).parent / "xrouter-router"
    proc = subprocess.Popen(
        [str(exe), "--config", str(tmp / "router.json"), "--port", str(port), "--workers", "1"],
        env=env,
        stdout=(tmp / f"router-{db}.log").open("wb"),
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


def python_probe() -> float:
    """Seconds for a fixed pure-Python loop (the sum of squares below 10 million), best
    of 3: how fast this VM runs Python, so figures from different machines can be put
    side by side (the VM of 2026-12-02 took 1.28 s)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        sum(i * i for i in range(10_000_000))
        best = min(best, time.perf_counter() - began)
    return best


def stop(proc: subprocess.Popen[bytes]) -> None:
    procs.stop(proc, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--before", default=BEFORE, help="the commit to compare against")
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument("--skip-features", action="store_true", help="no telemetry, cache or budget case")
    parser.add_argument("--features", default="telemetry,cache,budget", help="which of those cases to run")
    args = parser.parse_args()
    ensure_debs()
    tmp = Path(tempfile.mkdtemp(prefix="xrouter-bench-"))
    before = None if args.skip_before else export(args.before, tmp)
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
            f"wrk {args.duration}s per run; python loop probe {python_probe():.2f} s",
            flush=True,
        )
        results.append(measure("nginx direct", upstream + path, args.duration, tmp, None))
        redis.start()
        pg.start()
        versions: list[tuple[str, Path | None]] = [("after", None)]
        if before is not None:
            # before, after, after, before: neither version always gets the fresher
            # machine (PostgreSQL's after-work from the previous run, other load).
            b = (f"before {args.before}", before)
            versions = [b, versions[0], versions[0], b]
        for i, (label, code) in enumerate(versions):
            db = f"{label.split(' ')[0]}{i}"
            pg.sql(f"CREATE DATABASE {db}")
            subprocess.run(["redis-cli", "-u", redis.url, "flushall"], check=True, capture_output=True)
            router, router_port = start_router(tmp, upstream, redis, pg, db, code)
            procs.append(router)
            results.append(
                measure(
                    f"xrouter {label} (1 worker, auth+redis limits+usage)",
                    f"http://127.0.0.1:{router_port}{path}",
                    args.duration,
                    tmp,
                    KEY,
                    router.pid,
                )
            )
            time.sleep(2)  # one flush interval and then some
            rows = pg.sql("SELECT count(*) FROM xrouter_usage", db)
            print(f"  usage rows written by xrouter {label}: {rows}", flush=True)
            stop(router)
            procs.remove(router)
        if not args.skip_features:
            sink, otlp = start_otlp_sink()
            features: list[tuple[str, bool, dict[str, str], bool]] = [
                (
                    "telemetry on (OTLP/HTTP to a loopback sink)",
                    False,
                    {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp},
                    False,
                ),
                ("cache on, every request a hit", True, {}, False),
                ("budgeted key (budgetUsd 1,000,000: leased from Redis)", False, {}, True),
            ]
            wanted = set(args.features.split(","))
            features = [
                f
                for f, name in zip(features, ("telemetry", "cache", "budget"), strict=True)
                if name in wanted
            ]
            for i, (label, cache, extra, budget) in enumerate(features):
                db = f"feature{i}"
                pg.sql(f"CREATE DATABASE {db}")
                subprocess.run(["redis-cli", "-u", redis.url, "flushall"], check=True, capture_output=True)
                router, router_port = start_router(tmp, upstream, redis, pg, db, None, cache, extra, budget)
                procs.append(router)
                results.append(
                    measure(
                        f"xrouter {label}",
                        f"http://127.0.0.1:{router_port}{path}",
                        args.duration,
                        tmp,
                        KEY,
                        router.pid,
                    )
                )
                stop(router)
                procs.remove(router)
            sink.shutdown()
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
                    litellm.pid,
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


def _best(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The better figure of each measure over a version's runs."""
    if not runs:
        return None
    return {
        "server": runs[0]["server"],
        "rps32": max(r["rps32"] for r in runs),
        "p50_1": min(r["p50_1"] for r in runs),
        "p99_1": min(r["p99_1"] for r in runs),
        "cpu_us": min(r["cpu_us"] for r in runs),
    }


def report(results: list[dict[str, Any]]) -> None:
    base = results[0]
    print()
    print(
        "| server | req/s @32 conns | p50 @1 conn | p99 @1 conn | added p50 | added p99 | errors "
        "| CPU per request | load avg before |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        added50 = r["p50_1"] - base["p50_1"]
        added99 = r["p99_1"] - base["p99_1"]
        cpu = f"{r['cpu_us']:.0f} µs" if r["cpu_us"] else "-"
        print(
            f"| {r['server']} | {r['rps32']:,.0f} | {r['p50_1']:.3f} ms | {r['p99_1']:.3f} ms | "
            f"{added50:.3f} ms | {added99:.3f} ms | {r['errors']:.0f} | {cpu} | {r['load']:.1f} |"
        )
    print()
    after = _best([r for r in results if r["server"].startswith("xrouter after")])
    before = _best([r for r in results if r["server"].startswith("xrouter before")])
    lite = _best([r for r in results if r["server"].startswith("litellm")])
    telemetry = _best([r for r in results if r["server"].startswith("xrouter telemetry on")])
    cached = _best([r for r in results if r["server"].startswith("xrouter cache on")])
    budgeted = _best([r for r in results if r["server"].startswith("xrouter budgeted key")])
    if before is not None:
        print("(each xrouter version ran twice: the ratios use the better figure of each)")

    def added(r: dict[str, Any]) -> float:
        return max(r["p50_1"] - base["p50_1"], 1e-9)

    if after is None:
        return
    print(f"xrouter after / nginx throughput: {after['rps32'] / base['rps32']:.3f}")
    if before is not None:
        print(f"xrouter after / before throughput: {after['rps32'] / max(before['rps32'], 1e-9):.2f}x")
        print(
            f"xrouter CPU per request, before -> after: {before['cpu_us']:.0f} µs -> {after['cpu_us']:.0f} µs"
        )
        print(f"xrouter added p50, before -> after: {added(before):.3f} ms -> {added(after):.3f} ms")
    for name, r in (("telemetry on", telemetry), ("cache hit", cached), ("budgeted key", budgeted)):
        if r is not None:
            ratio = r["rps32"] / max(after["rps32"], 1e-9)
            print(
                f"xrouter {name} vs after (telemetry off, no cache): {ratio:.2f}x throughput,"
                f" CPU per request {after['cpu_us']:.0f} µs -> {r['cpu_us']:.0f} µs"
            )
    if lite is not None:
        ratio = after["rps32"] / max(lite["rps32"], 1e-9)
        verdict = "met" if ratio >= 25 else "NOT met"
        print(f"xrouter after / litellm throughput: {ratio:.1f}x (target >= 25x: {verdict})")
        if budgeted is not None:
            ratio = budgeted["rps32"] / max(lite["rps32"], 1e-9)
            verdict = "met" if ratio >= 25 else "NOT met"
            print(f"xrouter budgeted key / litellm throughput: {ratio:.1f}x (target >= 25x: {verdict})")
        if before is not None:
            print(f"xrouter before / litellm throughput: {before['rps32'] / max(lite['rps32'], 1e-9):.1f}x")
        print(f"litellm / xrouter after added p50 latency: {added(lite) / added(after):.1f}x")
    verdict = "met" if added(after) < 0.6 else "NOT met"
    print(f"xrouter after added p50 at 1 conn: {added(after):.3f} ms (target < 0.6 ms: {verdict})")


if __name__ == "__main__":
    main()
