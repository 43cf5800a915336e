"""``xrouter-router --config FILE [--host H] [--port P] [--workers N]``."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from pydantic import ValidationError

from . import logs
from .clients import Clients
from .config import load_config
from .metrics import Metrics
from .reload import _short
from .runtime import TargetRegistry, build


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="xrouter-router", description="XRouter: an OpenAI-compatible LLM gateway"
    )
    parser.add_argument("--config", required=True, help="router config file (YAML or JSON)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default=os.environ.get("XROUTER_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)

    logs.setup(args.log_level.upper())
    try:
        config = load_config(args.config)
        build(config, TargetRegistry(Metrics()), Clients())  # fail fast on missing secrets
    except (ValidationError, ValueError, OSError) as exc:
        print(f"xrouter-router: invalid config {args.config}: {_short(exc)}", file=sys.stderr)
        raise SystemExit(2) from None

    os.environ["XROUTER_CONFIG"] = os.path.abspath(args.config)
    uvicorn.run(
        "xrouter_router.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        # The router never reads the client's address, so uvicorn's X-Forwarded-*
        # rewriting (a middleware layer on every request) would buy nothing.
        proxy_headers=False,
        timeout_graceful_shutdown=int(config.server.drain_seconds + 0.999) or None,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
