# Two commands do all the set-up: `make up` runs the platform, `make test` runs the tests
# (`make test-all` with the slow ones too, as CI does).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= python3
export PORT ?= 8001
export FLOWER_PORT ?= 5555
# Web and workers of `make up` write their Prometheus counters here; /metrics adds them up.
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus

.PHONY: up test test-slow test-all lint format migrate superuser bench faults sysdeps sandbox sandbox-sysdeps services clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

# The dashboard's browser packages, exactly as package-lock.json pins them (npm ci).
node_modules/.package-lock.json: package.json package-lock.json
	command -v npm >/dev/null 2>&1 || { echo "npm is missing (sudo apt-get install npm)" >&2; exit 1; }
	npm ci --ignore-scripts --no-audit --no-fund

# Debian packages the tests use: bubblewrap for the sandbox, Chromium for the browser test,
# git for imports and deliveries (and `git http-backend`, the tests' git server).
# Installed when missing and we are root (CI, this machine); otherwise we say what to run.
SYSDEPS := bwrap:bubblewrap chromium:chromium npm:npm git:git
sysdeps:
	@missing=""; for pair in $(SYSDEPS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; \
	fi

# The sandbox: bubblewrap, util-linux (prlimit, setpriv), e2fsprogs (each workspace is a
# size-capped ext4 image) and libseccomp (the system call filter); git, with which the
# sandbox worker imports repositories. Installed when missing and
# we are root; otherwise `make up` refuses to start and says what to run.
sandbox-sysdeps:
	@missing=""; for pair in bwrap:bubblewrap prlimit:util-linux setpriv:util-linux mkfs.ext4:e2fsprogs git:git; do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	/sbin/ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "The sandbox needs:$$missing. Install them first: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	fi

# The sandbox's own minimal environment, made from the same interpreter as $(VENV).
SANDBOX_VENV_DIR ?= .venv-sandbox
$(SANDBOX_VENV_DIR)/.built: requirements-sandbox.txt $(VENV)/.runtime
	rm -rf $(SANDBOX_VENV_DIR)
	"$$($(PY) -c 'import sys; print(sys._base_executable)')" -m venv $(SANDBOX_VENV_DIR)
	$(SANDBOX_VENV_DIR)/bin/pip install --quiet -r requirements-sandbox.txt
	touch $@

sandbox: sandbox-sysdeps $(SANDBOX_VENV_DIR)/.built

services: $(VENV)/.runtime
	PY=$(PY) scripts/services.sh --create-db

migrate: services
	$(PY) manage.py migrate --noinput

up: migrate sandbox node_modules/.package-lock.json
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p var "$(PROMETHEUS_MULTIPROC_DIR)"
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" AIFLOW_PORT=$(PORT) PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)" $(VENV)/bin/honcho start -f Procfile

# Browser tests save their screenshots here.
export E2E_SCREENSHOT_DIR ?= $(CURDIR)/var/screenshots

# `make test`: the suite but for the tests marked slow (about 8 minutes on 2 cores);
# `make test-slow`: those (end-to-end through real workers, faults, browsers; about 11);
# `make test-all`: both. CI (.ci/run) runs both.
TEST_DEPS := $(VENV)/.dev sysdeps sandbox node_modules/.package-lock.json

test: $(TEST_DEPS)
	PY=$(PY) scripts/services.sh
	$(VENV)/bin/pytest --create-db -m "not slow" $(PYTEST_ARGS)

test-slow: $(TEST_DEPS)
	PY=$(PY) scripts/services.sh
	@echo "Browser test screenshots: $(E2E_SCREENSHOT_DIR)"
	$(VENV)/bin/pytest -m slow $(PYTEST_ARGS); status=$$?; \
	  echo "Browser test screenshots: $(E2E_SCREENSHOT_DIR)"; exit $$status

test-all: $(TEST_DEPS)
	status=0; $(MAKE) test || status=$$?; $(MAKE) test-slow || status=$$?; exit $$status

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

superuser: migrate
	$(PY) manage.py createsuperuser

# Figures, not assertions: one table from one run on the real stack (bench/run.py), written
# to bench/results/latest.json; wrk for the API figures (installed when missing and root).
bench: $(VENV)/.dev services sysdeps sandbox
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk; } || echo "wrk missing: the API figures are skipped (sudo apt-get install wrk)" >&2
	$(PY) bench/run.py

# The fault table: workers killed, Redis restarted, connections cut, a hanging provider.
faults: $(VENV)/.dev services sysdeps sandbox
	$(PY) bench/faults.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
