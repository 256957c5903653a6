# ocrmesh: `make up` runs the mesh, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
# `make up` runs auth_svc and the gateway with a process per core (see README: sizing).
CORES := $(shell nproc 2>/dev/null || echo 1)
# buf breaking compares the protos with main's (on main itself it compares with itself).
BUF_AGAINST ?= .git\#branch=main

export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help install lint fmt protos protos-check test test-unit test-integration test-e2e up up-observed demo bench certs clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

$(BUF): package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	@touch $@

install: $(VENV)/.synced $(BUF) ## create .venv from uv.lock and install buf

protos: $(VENV)/.synced ## regenerate ocrmesh/*/v1 from protos/
	$(PY) scripts/gen_protos.py

lint: install ## ruff, mypy, the layers (lint-imports, docs/architecture.md), buf lint and buf breaking
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(BUF) lint
	@if git rev-parse --verify -q main >/dev/null; then $(BUF) breaking --against '$(BUF_AGAINST)'; fi

fmt: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install ## every test: unit, integration (real PostgreSQL, RabbitMQ, SMTP), e2e
	$(PY) scripts/debian_tools.py test
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

test-integration: install
	$(PY) -m pytest -q tests/integration $(PYTEST_ARGS)

test-e2e: install
	$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

up: install ## run the whole mesh here as processes (Ctrl-C stops it)
	$(PY) scripts/create_db.py
	@mkdir -p var/mail var/keys
	@echo ""
	@echo "  ocrmesh is starting (Ctrl-C stops every process):"
	@echo "    web page          http://127.0.0.1:$${GATEWAY_PORT:-8000}/"
	@echo "    REST API + docs   http://127.0.0.1:$${GATEWAY_PORT:-8000}/docs"
	@echo "    auth_svc (gRPC)   127.0.0.1:$${AUTH_PORT:-50051}   grpcurl -plaintext 127.0.0.1:$${AUTH_PORT:-50051} list"
	@echo "    ocr_svc  (gRPC)   127.0.0.1:$${OCR_PORT:-50052}   grpcurl -plaintext 127.0.0.1:$${OCR_PORT:-50052} list"
	@echo "    mail (no SMTP)    $${MAIL_DIR:-var/mail}/*.eml"
	@echo "    processes         auth_svc $${AUTH_PROCESSES:-$(CORES)}, gateway $${GATEWAY_WORKERS:-$(CORES)}, ocr_svc $${OCR_PROCESSES:-1} (AUTH_PROCESSES, GATEWAY_WORKERS, OCR_PROCESSES)"
	@echo "    OCR recogniser    $$(OCR_RECOGNIZER=$${OCR_RECOGNIZER:-auto} $(PY) -c 'from ocr_svc.settings import OcrSettings; print(OcrSettings().ocr_recognizer)' 2>/dev/null)   OCR_RECOGNIZER=$${OCR_RECOGNIZER:-auto}: tesseract where Debian's tesseract-ocr-eng is installed"
	@echo "    walkthrough       make demo   (in another terminal)"
	@echo ""
	AUTH_PROCESSES=$${AUTH_PROCESSES:-$(CORES)} GATEWAY_WORKERS=$${GATEWAY_WORKERS:-$(CORES)} \
	MALLOC_ARENA_MAX=$${MALLOC_ARENA_MAX:-2} \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/honcho start -f $(PROCFILE)

# `make up` plus metrics: each service's metrics port (the ports deploy/prometheus scrapes) and,
# when Debian's prometheus is installed, a Prometheus on 127.0.0.1:9090 (Procfile.observed).
PROCFILE ?= Procfile
OBSERVED_ENV := AUTH_METRICS_PORT=9101 OCR_METRICS_PORT=9102 NOTIFIER_METRICS_PORT=9103
# Tracing (OTEL_*) variables for the observed mesh go here, next to the metrics ports.
up-observed: ## `make up` with metrics on and Prometheus at http://127.0.0.1:9090 (docs/observability.md)
	@mkdir -p var/prometheus
	@if command -v prometheus >/dev/null; then \
	  echo "  Prometheus        http://127.0.0.1:9090   (try: sum by (job) (up), or the Alerts tab)"; \
	  echo "  metrics           gateway :$${GATEWAY_PORT:-8000}/metrics, auth_svc :9101, ocr_svc :9102, notifier :9103"; \
	  $(OBSERVED_ENV) $(MAKE) --no-print-directory up PROCFILE=Procfile.observed; \
	else \
	  echo "  prometheus is not installed (sudo apt-get install prometheus): metrics only, on"; \
	  echo "  gateway :$${GATEWAY_PORT:-8000}/metrics, auth_svc :9101, ocr_svc :9102, notifier :9103"; \
	  $(OBSERVED_ENV) $(MAKE) --no-print-directory up; \
	fi

demo: install ## walk through register, verify, login and streamed OCR against `make up`
	$(PY) -m scripts.demo

bench: install ## every benchmark, one summary table (BENCH_ARGS=--quick for a short run)
	$(PY) -m bench.run_all $(BENCH_ARGS)

# The fault suite and the soak run (docs/reliability.md). Both restart or stop this machine's
# PostgreSQL and RabbitMQ only as the faults say (faults), and always give them back.
.PHONY: faults soak
DURATION ?= 30m
faults: install ## break PostgreSQL, RabbitMQ, SMTP, workers, the notifier under traffic; a table in var/faults (FAULTS_ARGS)
	$(PY) -m bench.faults $(FAULTS_ARGS)

soak: install ## steady traffic for DURATION (default 30m): RSS, fds, connections, latency; var/soak/*.md and .png
	$(PY) -m bench.soak --duration $(DURATION) $(SOAK_ARGS)

certs: install ## a development CA and per-service gRPC TLS certificates in var/certs (docs/production.md)
	$(PY) scripts/make_certs.py --out var/certs $(CERTS_ARGS)

clean: ## remove the environments and caches (not var/)
	rm -rf $(VENV) $(TOOLS) node_modules .mypy_cache .ruff_cache .pytest_cache
