# Two entry points on a fresh Debian machine (as root): `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CONFIG ?=
# What the test suite starts for real: OCI clients (containerd too), the Go reference
# registry, Redis, haproxy, and the browser the web-page tests drive (tests/ui).
APT_PACKAGES := skopeo podman buildah umoci containerd redis-server nats-server slapd docker-registry haproxy wrk apache2-utils chromium
PYTEST_ARGS ?=
# pytest-xdist processes for the main pass of `make test`, one test file each at a time (so a
# module's servers start once). More than the cores: much of a test's time is spent waiting
# (servers starting, delays the tests wait out). 0: one process, one test after another.
TEST_JOBS ?= 3
LINT_DIRS := $(wildcard src tests bench)

# Reference programs (zot, the OCI conformance suite, crane, regctl) for `make interop` and
# bench/'s zot column; only CI and the project's machines have this folder.
TOOLS := $(abspath ../shared/tools)

.PHONY: run test test-deps lint bytecode interop bench bench-quick bench-smoke screenshots clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The package's compiled modules, written once here: with PYTHONDONTWRITEBYTECODE set (as
# in some CI images) every process would compile the whole package again, about 0.3 s of
# CPU for each server and worker process, and the tests start hundreds of them.
bytecode: $(VENV)/.installed
	@$(PY) -m compileall -q src >/dev/null

run: bytecode
	$(VENV)/bin/ocireg serve $(CONFIG)

test-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)
	$(VENV)/bin/mypy

test: bytecode test-deps lint
	$(VENV)/bin/pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
	# the dist-spec suite again, through a member of a three-member cluster on one root
	OCIREG_TEST_TOPOLOGY=cluster3 $(VENV)/bin/pytest $(PYTEST_ARGS) tests/api
	# ...and on SeaweedFS (S3) + Redis, through a member of a three-member cluster
	OCIREG_TEST_BACKEND=s3 OCIREG_TEST_TOPOLOGY=cluster3 $(VENV)/bin/pytest $(PYTEST_ARGS) tests/api

# tests/interop against zot, the conformance suite, crane and regctl; pytest collects that
# folder only when OCIREG_INTEROP_TOOLS is set (tests/conftest.py), so `make test` never does.
interop:
	@if [ ! -d "$(TOOLS)" ]; then \
	  echo "make interop: $(TOOLS) does not exist; nothing to run (the tests need zot, crane, regctl and the conformance suite from there)"; \
	else \
	  $(MAKE) --no-print-directory bytecode test-deps && \
	  OCIREG_INTEROP_TOOLS=$(TOOLS) $(VENV)/bin/pytest $(PYTEST_ARGS) tests/interop; \
	fi

# the web pages, wide and on a phone, for docs/ui.md (needs Debian's chromium: test-deps)
screenshots: $(VENV)/.installed test-deps
	$(PY) -m tests.ui.screenshots docs/images

bench: bytecode test-deps
	$(PY) -m bench

bench-quick: bytecode test-deps
	$(PY) -m bench --quick

# `python -m bench --quick` checked end to end (bench/test_smoke.py); not part of `make test`.
bench-smoke: bytecode test-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS) bench/test_smoke.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
