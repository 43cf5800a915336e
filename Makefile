# The front door. `make up` brings the whole system up; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export XROUTER_TOOLS_DIR ?= $(HOME)/.cache/xrouter/tools

.PHONY: venv deps tools test test-unit test-e2e lint up cluster cluster-down bench crds golden clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests and `make up` need (Redis, PostgreSQL).
deps:
	bash hack/install-deps.sh

# Kubernetes control plane, etcd, kwok and helm, built from Go modules into $(XROUTER_TOOLS_DIR).
tools:
	bash hack/build-tools.sh

test: venv deps tools
	$(MAKE) test-unit
	$(MAKE) test-e2e

test-unit: venv
	$(PY) -m pytest -m 'not e2e' tests

test-e2e: venv
	$(PY) -m pytest -m e2e tests

lint: venv
	$(VENV)/bin/ruff check router operator hack tests bench
	$(VENV)/bin/mypy router/xrouter_router operator/xrouter_operator hack/xrouter_dev

cluster: venv tools
	$(PY) -m xrouter_dev.cluster start --dir .cluster

cluster-down: venv
	$(PY) -m xrouter_dev.cluster stop --dir .cluster

clean:
	rm -rf $(VENV) .cluster
