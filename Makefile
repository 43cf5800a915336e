# The front door. `make up` brings the whole system up; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export XROUTER_TOOLS_DIR ?= $(HOME)/.cache/xrouter/tools

.PHONY: venv deps tools images checkov agents s3proxy agent-fixtures conformance test test-unit test-unit-first test-unit-tools tools-and-images test-e2e lint up cluster cluster-down bench crds golden clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests and `make up` need: Redis, PostgreSQL, and for the real node containerd,
# runc, the CNI plugins, iptables/ipset/conntrack, buildah and mmdebstrap.
deps:
	bash hack/install-deps.sh

# Kubernetes control plane, etcd, kwok, helm and the real node's kubelet, kube-proxy, CoreDNS,
# kube-router and metrics-server, built from Go modules into $(XROUTER_TOOLS_DIR).
tools:
	bash hack/build-tools.sh

# Our images (router, operator, PostgreSQL, Redis, postgres client, fake provider, pause) with buildah
# over an mmdebstrap base, cached by content in ~/.cache/xrouter/images; loaded into the real node of
# a running `make cluster`.
images: venv deps
	$(PY) -m xrouter_dev.images --load

# S3Proxy (a real S3 server, filesystem backend) from Maven Central into ~/.cache/xrouter/s3proxy-*
# (outside the repo); the S3 backup tests (tests/operator/test_op_backup_s3.py) run it on loopback.
s3proxy: deps
	bash hack/install-s3proxy.sh

# Claude Code and Codex CLI, pinned, from npm into ~/.cache/xrouter/agents (outside the repo); the
# agent-client tests (tests/router/test_agents*.py) run them against the router.
agents: deps
	bash hack/install-agents.sh

# Re-record what each agent client sends (tests/fixtures/agents/*.json) after a deliberate upgrade
# of the pins in hack/install-agents.sh; tests/router/test_agent_fixtures.py compares against them.
agent-fixtures: venv agents
	XROUTER_RECORD_AGENTS=1 $(PY) -m pytest -q tests/router/test_agent_fixtures.py

# docs/conformance.md (front door × provider type), rendered from what tests/router/test_conformance.py
# observes; that test fails when the doc is stale.
conformance: venv
	XROUTER_WRITE_CONFORMANCE=1 $(PY) -m pytest -q tests/router/test_conformance.py

# Unit tests, then the end-to-end tests: kwok-only ones and the real-pod ones (tests/e2e/test_realnode_*).
# On a first build the slow prerequisites overlap the tests that do not need them:
# 1. the Debian packages, the venvs, checkov, the agent clients and S3Proxy (network-bound, -j4);
# 2. the unit tests that need no Go tool (router, operator, dev) run while Go compiles the tools and
#    buildah builds the images under `nice`: the tests mostly wait on sockets and subprocesses, so
#    the compiler takes the idle cores, and the niceness (CPU weight 110 against the tests' 1024) keeps
#    timing-sensitive tests (stalls, leases, breakers) close to their speed on a quiet machine;
# 3. the packaging tests (they run helm and kubectl), then the end-to-end tests.
# Warm, steps 1 and 2's builds take about a second, and `make test` is the tests alone.
# --durations: the slowest tests, in the log, for whoever next makes `make test` faster.
UNIT_FIRST := tests/router tests/operator tests/dev
UNIT_TOOLS := tests/packaging

test:
	$(MAKE) -j4 venv deps checkov agents s3proxy
	$(MAKE) -j2 --output-sync=target test-unit-first tools-and-images
	$(MAKE) test-unit-tools
	$(MAKE) test-e2e

tools-and-images:
	nice -n 10 $(MAKE) -j2 tools images

test-unit-first: venv
	$(PY) -m pytest --durations=15 -m 'not e2e' $(UNIT_FIRST)

test-unit-tools: venv
	$(PY) -m pytest -m 'not e2e' $(UNIT_TOOLS)

# checkov (the security scanner tests/operator/test_op_checkov.py runs on a full render) pins
# dependencies that conflict with ours, so it gets its own venv in the cache, outside the repo.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(HOME)/.cache/xrouter/checkov-$(CHECKOV_VERSION)
export XROUTER_CHECKOV := $(CHECKOV_VENV)/bin/checkov
$(CHECKOV_VENV)/.installed:
	rm -rf $(CHECKOV_VENV) && $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

checkov: $(CHECKOV_VENV)/.installed

test-unit: venv
	$(PY) -m pytest -m 'not e2e' tests

test-e2e: venv
	$(PY) -m pytest --durations=15 -m e2e tests

lint: venv
	$(VENV)/bin/ruff check router operator hack tests bench
	$(VENV)/bin/mypy router/xrouter_router operator/xrouter_operator hack/xrouter_dev

# The whole system on this machine; Ctrl-C stops it. XROUTER_KUBECONFIG=path uses that cluster instead.
up: venv deps tools images
	$(PY) -m xrouter_dev.up

# The control plane, kwok's 3 fake nodes and the real node xrouter-node, in the background.
cluster: venv deps tools images
	$(PY) -m xrouter_dev.daemon start --dir .cluster --real-node

cluster-down: venv
	$(PY) -m xrouter_dev.daemon stop --dir .cluster

clean:
	rm -rf $(VENV) .cluster

# Pin the runtime dependencies that the images install (Dockerfile.*): resolve pyproject's
# dependencies in a throwaway clean venv, then hack/lock.py writes the pins, with Python-version
# markers where a dependency is conditional (the lock must hold on any Python 3.11+, e.g. Debian's
# 3.11.2, where redis needs async-timeout). Rerun after editing pyproject.toml.
.PHONY: lock
lock: venv
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PYTHON) -m venv "$$tmp/venv" && \
	"$$tmp/venv/bin/pip" install --quiet --upgrade pip && \
	"$$tmp/venv/bin/pip" install --quiet . && \
	$(PY) hack/lock.py "$$tmp/venv/bin/python" > "$$tmp/constraints.txt" && \
	mv "$$tmp/constraints.txt" constraints.txt
	@echo "wrote constraints.txt ($$(grep -c '==' constraints.txt) pins)"

# Generated files owned by the operator: the CRD (from the pydantic models) and the
# operator's ClusterRole (from operator/xrouter_operator/rbac.py).
crds: venv
	$(VENV)/bin/xrouter-operator crd > crds/xrouter.io_xrouters.yaml
	$(VENV)/bin/xrouter-operator rbac > config/rbac/role.yaml

# Regenerate tests/operator/golden/*.expected.yaml from the *.input.yaml next to them.
golden: venv
	XROUTER_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/operator/test_op_golden.py

# Router benchmark: nginx direct vs xrouter vs LiteLLM proxy, side by side (see docs/router-performance.md).
bench: venv deps
	$(PY) bench/router_bench.py

# The price catalogue (router/xrouter_router/pricedata.json): dated, sources named, sorted, every
# price a number >= 0 per million tokens.
.PHONY: prices
prices: venv
	$(PY) -m xrouter_router.pricing
