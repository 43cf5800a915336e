#!/usr/bin/env bash
# Build the local Kubernetes control plane and friends from Go modules, into a cache outside the repo.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kubelet, kube-proxy   (the real node; same version stamp as the control plane)
#   kwok                  (sigs.k8s.io/kwok)
#   helm                  (helm.sh/helm/v3)
#   metrics-server        (sigs.k8s.io/metrics-server: CPU figures for the HPA)
#   kube-router           (github.com/cloudnativelabs/kube-router/v2: NetworkPolicy, firewall only)
#   coredns               (github.com/coredns/coredns, with only the plugins our Corefile uses)
#
# Why two modules and not one per tool: client-go, apimachinery, grpc and friends are most of the
# compile time, and each separate module graph compiles them again, at its own versions. All tools
# but CoreDNS fit one graph, the Kubernetes wrapper module's (their k8s.io modules are pinned to the
# control plane's v0.33.x), so they share one compile of it. CoreDNS needs client-go v0.35 and a newer
# grpc than etcd v3.5 builds with, so it keeps its own module, trimmed to the plugins our Corefile
# uses (hack/xrouter_dev/nodeconfig.py corefile(); tests/dev/test_build_tools.py keeps them in step).
#
# Output: $XROUTER_TOOLS_DIR/bin (default ~/.cache/xrouter/tools/bin). Idempotent: each tool has a stamp
# file holding its pinned versions, and a warm cache does nothing. Needs only Go (the machine has it);
# CGO is disabled so no C toolchain is needed. Go's module and build caches stay at their defaults.
set -euo pipefail

# k8s 1.33.13: the newest release whose staging modules (v0.33.13) are all on the module proxy this
# machine reaches (several v0.32.x staging modules, e.g. k8s.io/kube-scheduler, are not served there).
K8S_VERSION="v1.33.13"          # k8s.io/kubernetes; staging modules are v0.33.13
ETCD_VERSION="v3.5.21"          # go.etcd.io/etcd/server/v3, the version k8s 1.33.13 itself requires
KWOK_VERSION="v0.7.0"           # sigs.k8s.io/kwok (built against k8s v0.33.0)
# helm v3.18.x is built against k8s v0.33, so it shares the graph (v3.17.x wanted v0.32).
HELM_VERSION="v3.18.6"          # helm.sh/helm/v3
METRICS_SERVER_VERSION="v0.8.0" # sigs.k8s.io/metrics-server (built against k8s v0.33.2)
# The only kube-router v2 release the module proxy serves here; it runs with only its firewall
# (NetworkPolicy) controller, on a throwaway local node.
KUBE_ROUTER_VERSION="v2.1.0"    # github.com/cloudnativelabs/kube-router/v2
COREDNS_VERSION="v1.14.7"       # github.com/coredns/coredns
# Our Corefile's directives, in CoreDNS's own order (it keeps its order; this only filters).
COREDNS_PLUGINS="bind errors kubernetes cache loadbalance"

TOOLS_DIR="${XROUTER_TOOLS_DIR:-$HOME/.cache/xrouter/tools}"
BIN="$TOOLS_DIR/bin"
STAMPS="$TOOLS_DIR/stamps"
SRC="$TOOLS_DIR/src"

# Every tool of the shared graph is stamped with the whole graph's pins: changing one pin can move
# the versions the others are compiled with.
GRAPH="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION kwok=$KWOK_VERSION helm=$HELM_VERSION"
GRAPH+=" metrics-server=$METRICS_SERVER_VERSION kube-router=$KUBE_ROUTER_VERSION"
K8S_STAMP="control-plane $GRAPH"
NODE_STAMP="node $GRAPH"
KWOK_STAMP="kwok $GRAPH"
HELM_STAMP="helm capabilities-ldflags $GRAPH"
METRICS_SERVER_STAMP="metrics-server $GRAPH"
KUBE_ROUTER_STAMP="kube-router $GRAPH"
COREDNS_STAMP="coredns=$COREDNS_VERSION plugins=${COREDNS_PLUGINS// /,}"
CONTROL_PLANE=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)
NODE_TOOLS=(kubelet kube-proxy)

stamp_ok() { # name expected binaries...
  local name="$1" want="$2"; shift 2
  [[ -f "$STAMPS/$name" ]] && [[ "$(<"$STAMPS/$name")" == "$want" ]] || return 1
  local b
  for b in "$@"; do [[ -x "$BIN/$b" ]] || return 1; done
}

shared_ok=1
stamp_ok k8s "$K8S_STAMP" "${CONTROL_PLANE[@]}" && stamp_ok node "$NODE_STAMP" "${NODE_TOOLS[@]}" &&
  stamp_ok kwok "$KWOK_STAMP" kwok && stamp_ok helm "$HELM_STAMP" helm &&
  stamp_ok metrics-server "$METRICS_SERVER_STAMP" metrics-server &&
  stamp_ok kube-router "$KUBE_ROUTER_STAMP" kube-router || shared_ok=0
coredns_ok=1
stamp_ok coredns "$COREDNS_STAMP" coredns || coredns_ok=0
if ((shared_ok && coredns_ok)); then
  echo "build-tools: all tools up to date in $BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-tools: Go is required (go 1.24 or newer) and was not found on PATH" >&2
  exit 1
fi

mkdir -p "$BIN" "$STAMPS" "$SRC"
export CGO_ENABLED=0
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
JOBS="${XROUTER_BUILD_JOBS:-$(nproc)}"
T_ALL=$SECONDS
echo "build-tools: building into $BIN with $(go version), -p $JOBS"

step() { echo "build-tools: [$(date -u +%H:%M:%S)] $*"; }

gomod_of() { # module@version -> path of its go.mod in the module cache
  local f
  f="$(cd "$SRC" && GOFLAGS= go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [[ -f "$f" ]] || { echo "build-tools: could not download $1" >&2; exit 1; }
  echo "$f"
}

compile() { # module dir, ldflags, packages...: one `go build` into $BIN
  local dir="$1" ldflags="$2"; shift 2
  (cd "$dir" && go build -p "$JOBS" -trimpath -tags providerless -ldflags "$ldflags" -o "$BIN/" "$@")
}

# --- The shared graph: the Kubernetes wrapper module, with every tool but CoreDNS -------------------
build_shared() {
  local t0=$SECONDS t1 minor patch staging_ver mod="$SRC/shared-k8s-$K8S_VERSION"
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  patch="$(echo "$K8S_VERSION" | cut -d. -f3)"
  staging_ver="v0.$minor.$patch"
  mkdir -p "$mod/cmd/etcd"

  step "shared: fetching k8s.io/kubernetes@$K8S_VERSION and helm.sh/helm/v3@$HELM_VERSION go.mod"
  local gomod helm_gomod staging
  gomod="$(gomod_of "k8s.io/kubernetes@$K8S_VERSION")"
  helm_gomod="$(gomod_of "helm.sh/helm/v3@$HELM_VERSION")"
  # Every staging module is a `replace k8s.io/x => ./staging/src/k8s.io/x` line in kubernetes' go.mod;
  # pinning them all to the control plane's version is what makes the other tools share its graph.
  staging="$(grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/' "$gomod" | awk '{print $1}' | sort -u)"
  [[ -n "$staging" ]] || { echo "build-tools: no staging modules found in $gomod" >&2; exit 1; }

  {
    echo "// Generated by hack/build-tools.sh; do not edit."
    echo "module xrouter.local/tools"
    echo
    grep -m1 -E '^go [0-9.]+$' "$gomod"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo "	sigs.k8s.io/kwok $KWOK_VERSION"
    echo "	helm.sh/helm/v3 $HELM_VERSION"
    echo "	sigs.k8s.io/metrics-server $METRICS_SERVER_VERSION"
    echo "	github.com/cloudnativelabs/kube-router/v2 $KUBE_ROUTER_VERSION"
    echo ")"
    echo
    echo "replace ("
    local m
    for m in $staging; do echo "	$m => $m $staging_ver"; done
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/cmd/etcd/main.go" <<'EOF'
// Generated by hack/build-tools.sh: the etcd server binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

// Generated by hack/build-tools.sh: pins the commands we build.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "sigs.k8s.io/kwok/cmd/kwok"
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
EOF
  rm -f "$mod/go.sum"
  step "shared: resolving modules (go mod tidy; downloads on a cold cache)"
  t1=$SECONDS
  (cd "$mod" && go mod tidy -e >/dev/null)
  step "shared: modules resolved in $((SECONDS - t1))s"

  local build_date ver_pkg k8s_ldflags="-s -w"
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for ver_pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $ver_pkg.gitVersion=$K8S_VERSION -X $ver_pkg.gitMajor=1 -X $ver_pkg.gitMinor=$minor"
    k8s_ldflags+=" -X $ver_pkg.gitTreeState=clean -X $ver_pkg.buildDate=$build_date"
  done

  # One `go build` for the control plane and the node (same flags): both cores stay busy to the end.
  step "shared: compiling ${CONTROL_PLANE[*]} ${NODE_TOOLS[*]} (slow on a cold cache)"
  t1=$SECONDS
  compile "$mod" "$k8s_ldflags" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl ./cmd/etcd \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  step "shared: control plane and node compiled in $((SECONDS - t1))s"
  "$BIN/kube-apiserver" --version
  "$BIN/kubelet" --version
  "$BIN/etcd" --version | head -1
  echo "$K8S_STAMP" >"$STAMPS/k8s"
  echo "$NODE_STAMP" >"$STAMPS/node"

  # The rest reuse what the control plane compiled; each has its own version stamps, so its own link.
  t1=$SECONDS
  compile "$mod" "-s -w" sigs.k8s.io/kwok/cmd/kwok
  echo "$KWOK_STAMP" >"$STAMPS/kwok"
  step "shared: kwok compiled in $((SECONDS - t1))s"

  # helm's Makefile stamps its own version and the Kubernetes version it assumes for `helm template`
  # (.Capabilities.KubeVersion; without it helm claims v1.20.0 and charts with kubeVersion >=1.25 fail).
  # That version is the minor of the client-go helm is built with, read from helm's go.mod.
  local helm_minor helm_ldflags p
  helm_minor="$(awk '$1 == "k8s.io/client-go" {print $2}' "$helm_gomod" | cut -d. -f2)"
  [[ -n "$helm_minor" ]] || { echo "build-tools: no k8s.io/client-go in $helm_gomod" >&2; exit 1; }
  helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    helm_ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$helm_minor"
  done
  t1=$SECONDS
  compile "$mod" "$helm_ldflags" helm.sh/helm/v3/cmd/helm
  "$BIN/helm" version --short
  echo "$HELM_STAMP" >"$STAMPS/helm"
  step "shared: helm compiled in $((SECONDS - t1))s"

  t1=$SECONDS
  compile "$mod" "-s -w -X k8s.io/component-base/version.gitVersion=$METRICS_SERVER_VERSION" \
    sigs.k8s.io/metrics-server/cmd/metrics-server
  echo "$METRICS_SERVER_STAMP" >"$STAMPS/metrics-server"
  step "shared: metrics-server compiled in $((SECONDS - t1))s"

  t1=$SECONDS
  compile "$mod" "-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  echo "$KUBE_ROUTER_STAMP" >"$STAMPS/kube-router"
  step "shared: kube-router compiled in $((SECONDS - t1))s"
  step "shared: done in $((SECONDS - t0))s"
}

# --- CoreDNS: its own module, only our Corefile's plugins ------------------------------------------
build_coredns() {
  local t0=$SECONDS mod="$SRC/coredns-$COREDNS_VERSION" p
  mkdir -p "$mod"
  {
    echo "// Generated by hack/build-tools.sh; do not edit."
    echo "module xrouter.local/coredns"
    echo
    grep -m1 -E '^go [0-9.]+$' "$(gomod_of "github.com/coredns/coredns@$COREDNS_VERSION")"
    echo
    echo "require github.com/coredns/coredns $COREDNS_VERSION"
  } >"$mod/go.mod"
  {
    echo "// Generated by hack/build-tools.sh: CoreDNS with only the plugins our Corefile uses"
    echo "// (CoreDNS's own main imports all of them, and their dependencies)."
    echo "package main"
    echo
    echo "import ("
    echo "	\"slices\""
    echo
    echo "	\"github.com/coredns/coredns/core/dnsserver\""
    echo "	\"github.com/coredns/coredns/coremain\""
    echo
    for p in $COREDNS_PLUGINS; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
    echo ")"
    echo
    printf 'var used = []string{'
    for p in $COREDNS_PLUGINS; do printf '"%s", ' "$p"; done
    echo '}'
    echo
    echo "// The directives keep CoreDNS's order, which decides the order plugins run in."
    echo "func init() {"
    echo "	dnsserver.Directives = slices.DeleteFunc(dnsserver.Directives, func(d string) bool {"
    echo "		return !slices.Contains(used, d)"
    echo "	})"
    echo "}"
    echo
    echo "func main() { coremain.Run() }"
  } >"$mod/main.go"
  gofmt -w "$mod/main.go"
  rm -f "$mod/go.sum"
  step "coredns: resolving modules"
  (cd "$mod" && go mod tidy -e >/dev/null)
  step "coredns: compiling (plugins: $COREDNS_PLUGINS)"
  (cd "$mod" && go build -p "$JOBS" -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$BIN/coredns" .)
  "$BIN/coredns" -plugins | tr '\n' ' ' && echo
  echo "$COREDNS_STAMP" >"$STAMPS/coredns"
  step "coredns: done in $((SECONDS - t0))s"
}

if ((shared_ok)); then step "shared: up to date ($GRAPH)"; else build_shared; fi
if ((coredns_ok)); then step "coredns: up to date ($COREDNS_STAMP)"; else build_coredns; fi

echo "build-tools: total $((SECONDS - T_ALL))s; binaries in $BIN:"
ls -1 "$BIN"
