# Every routine act has a target. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.tools/bin:$(PATH)

PACKAGES := -e libs/common -e services/gateway -e services/results -e 'services/classifier-worker[torch]' -e services/standalone \
	-e clients/python
# Test/tool requirements: one file per area under requirements/; Debian packages in requirements/apt-*.txt.
# requirements/constraints.txt pins every third-party version (`make constraints` writes it).
CONSTRAINTS := requirements/constraints.txt
REQUIREMENTS := $(filter-out requirements/apt-% $(CONSTRAINTS),$(sort $(wildcard requirements/*.txt)))
APT_PACKAGES := $(sort $(shell cat requirements/apt-*.txt 2>/dev/null | sed 's/#.*//'))

.DEFAULT_GOAL := help
.PHONY: help setup system-packages setup-extra constraints run stack stack-up stack-down test test-fast lint typecheck format

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# torch: the CPU build on Linux without an NVIDIA GPU, the CUDA build with one, PyPI's on macOS;
# TORCH_VARIANT=cpu|cu128|pypi overrides (scripts/install-torch.sh).
$(VENV)/.installed: $(REQUIREMENTS) $(CONSTRAINTS) libs/common/pyproject.toml services/*/pyproject.toml clients/*/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	PIP="$(PIP)" TORCH_VARIANT="$(TORCH_VARIANT)" scripts/install-torch.sh
	$(PIP) install --quiet -c $(CONSTRAINTS) $(PACKAGES) $(addprefix -r ,$(REQUIREMENTS)) 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $@

setup: system-packages $(VENV)/.installed setup-extra ## Create .venv, install everything, seed ./data (models + gallery)
	$(PY) -m classifier_worker.seed --models-dir data/models --gallery-dir data/gallery --gallery-source gallery

constraints: $(VENV)/.installed ## Rewrite requirements/constraints.txt from the venv (after changing a dependency)
	$(PY) -m scripts.constraints

# Debian packages the tests and `make stack` use (nginx, prometheus, chromium); installed when missing
# and root, otherwise listed. `make run` needs none of them.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "WARNING: missing Debian packages (needed by tests and make stack, not by make run):$$missing"; fi

# Areas add their own setup steps with `setup-extra::` in mk/*.mk.
setup-extra::

# POOLS="lite=efficientnet_lite0,efficientnet_lite1;big=efficientnet_lite2": worker pools
# (CLASSIFIER_POOLS, docs/pools.md); `make stack` then runs WORKERS workers per pool.
run: ## The whole system in one process at http://127.0.0.1:8000 (in-process queue, SQLite in ./data)
	$(if $(POOLS),CLASSIFIER_POOLS='$(POOLS)') $(PY) -m classifier_standalone

stack: ## The production topology on localhost behind nginx at http://127.0.0.1:8080 (RabbitMQ at CLASSIFIER_BROKER_URL)
	$(PY) -m scripts.stack run --workers $(or $(WORKERS),2) --pools '$(POOLS)'

stack-up: ## Start the stack in the background (stop it with make stack-down)
	$(PY) -m scripts.stack up --workers $(or $(WORKERS),2) --pools '$(POOLS)'

stack-down: ## Stop a background stack
	$(PY) -m scripts.stack down

test: ## The whole test suite
	$(PY) -m pytest

# The quick loop leaves out what needs RabbitMQ, a browser or a few seconds, and the folders that
# start servers, load every model or render the chart, and such files (make test runs them all).
FAST_IGNORE := e2e ui k8s packaging reliability system cli client standalone gateway
FAST_IGNORE_FILES := worker/test_accuracy.py worker/test_selection.py worker/test_export.py worker/test_onnx_only.py \
	monitoring/test_chart_monitoring.py

test-fast: ## The quick loop (about a minute): unit and contract tests; no RabbitMQ, browser, chart or servers
	$(PY) -m pytest -q -m "not rabbitmq and not slow and not browser" -p no:cacheprovider \
		$(addprefix --ignore=tests/,$(FAST_IGNORE) $(FAST_IGNORE_FILES))

LINT_PATHS := libs services clients tests bench experiments scripts devstack

lint: typecheck ## ruff, the import boundaries (.importlinter: services -> common only, tools never import tests) and mypy
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/lint-imports

typecheck: ## mypy over classifier_common, the services and the client (mypy.ini)
	$(VENV)/bin/mypy

format: ## ruff: fix what it can and format
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

-include mk/*.mk
