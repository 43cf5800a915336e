#!/usr/bin/env bash
# Debian packages the tests and `make up` need:
#   - redis-server and PostgreSQL (the router tests run their own instances on loopback);
#   - the real node's runtime: containerd, runc, the CNI plugins, iptables/ipset/conntrack (kube-proxy
#     and the NetworkPolicy engine), and buildah + mmdebstrap to build our images with no registry;
#   - npm (and Node.js with it), which installs the agent clients the router tests run (make agents);
#   - s3cmd, Java and Maven for the S3 backup tests (make s3proxy).
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1; }

pkgs=()
have_cmd redis-server || pkgs+=(redis-server)
have_cmd redis-sentinel || pkgs+=(redis-sentinel)
have_postgres || pkgs+=(postgresql)
have_cmd containerd || pkgs+=(containerd)
have_cmd runc || pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || pkgs+=(containernetworking-plugins)
have_cmd iptables || pkgs+=(iptables)
have_cmd ipset || pkgs+=(ipset)
have_cmd conntrack || pkgs+=(conntrack)
have_cmd buildah || pkgs+=(buildah)
have_cmd mmdebstrap || pkgs+=(mmdebstrap)
have_cmd npm || pkgs+=(npm)
# The S3 backup tests: s3cmd (the same Debian package the pgclient image runs the upload with), and
# Java + Maven for S3Proxy, the S3 server they run (make s3proxy).
have_cmd s3cmd || pkgs+=(s3cmd)
have_cmd java || pkgs+=(default-jre-headless)
have_cmd mvn || pkgs+=(maven)
# buildah's rootful builds need the overlay/fuse helpers and a policy file; the package brings them.

if [ ${#pkgs[@]} -eq 0 ]; then
  echo "install-deps: all packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${pkgs[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
# The packages start system services where an init system exists (redis, postgresql, containerd);
# the tests and the launcher run their own instances with their own state, so leave those alone.
