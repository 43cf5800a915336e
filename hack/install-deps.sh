#!/usr/bin/env bash
# Debian packages the router tests and `make up` need: redis-server and PostgreSQL.
# Idempotent: does nothing when both are already installed.
set -euo pipefail

have_redis() { command -v redis-server >/dev/null 2>&1; }
have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1; }

pkgs=()
have_redis || pkgs+=(redis-server)
have_postgres || pkgs+=(postgresql)

if [ ${#pkgs[@]} -eq 0 ]; then
  echo "install-deps: redis-server and postgresql already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${pkgs[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
# The packages start system services where an init system exists; the tests run
# their own instances on free loopback ports, so leave the system ones alone.
