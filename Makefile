# Streetpole: the two commands are `make run` and `make test`; everything they need is
# installed here on first use (Debian packages with apt-get, Python packages into .venv).

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
PY          := $(BIN)/python
STAMP       := $(VENV)/.installed
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# MicroPython's source for the 32-bit and frozen builds (docs/firmware.md, "Three interpreters").
MICROPYTHON_SRC ?= $(abspath ../shared/micropython)
export MICROPYTHON_SRC

.PHONY: help run test test-fast lint format clean deps apt venv schemas lock mpy assets screenshots micropython

help:
	@echo "make run     start broker, controller and a simulated street (20 poles); prints where to look"
	@echo "make test    install what is missing and run the whole test suite"
	@echo "make test-fast  the suite without the tests marked slow (the inner loop)"
	@echo "make lint    ruff and mypy"
	@echo "make deps    Debian packages, .venv with this checkout installed editable (pip install -e .[dev]),"
	@echo "             dashboard assets; then .venv/bin/streetpole is the command line"
	@echo "             (a technician needs the tools alone: pip install -e \".[tools]\", README \"Install\")"
	@echo "make schemas regenerate protocols/schemas/*.json from protocols/schema_defs.py"
	@echo "make mpy     compile the modules tests/mp/manifest.py lists to .mpy into build/mpy"
	@echo "make micropython  mpy-cross, the 32-bit unix port and the frozen node from MICROPYTHON_SRC (part of deps)"
	@echo "make demo-data, make serve   open data without a street (sample data, controller alone)"
	@echo "make bench   benchmarks: ingest, store, firmware heap and speed, open-data API, simulator, soak"
	@echo "make node-virtual  a virtual node for technician practice (streetpole node virtual)"
	@echo "make assets  map and chart libraries from npm into the dashboard (part of deps)"
	@echo "make screenshots  regenerate docs/screenshots from the end-to-end dashboard test"
	@echo "make clean   remove build output, caches and the venv"

deps: apt venv assets micropython

# Debian packages: installed only when a command they provide is missing.
apt:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_sub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	command -v victoria-metrics >/dev/null 2>&1 || missing="$$missing victoria-metrics"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	printf 'int main(void){return 0;}\n' | gcc -m32 -x c - -o /dev/null 2>/dev/null || missing="$$missing gcc-multilib"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(STAMP)

# The checkout installed editable with every extra (requirements.txt), so the packages import from
# here and .venv/bin/streetpole is the console script of pyproject.toml.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
	@touch $@

# Re-pin every Python package (run by a developer, result committed).
lock:
	rm -rf /tmp/streetpole-lock && $(PYTHON) -m venv /tmp/streetpole-lock
	/tmp/streetpole-lock/bin/pip install -q -r requirements.txt
	/tmp/streetpole-lock/bin/pip freeze --exclude-editable > constraints.txt

test: deps
	$(BIN)/pytest $(PYTEST_ARGS)

# The inner loop: every test not marked slow (a few seconds or more); `make test` runs them all.
test-fast: deps
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: venv
	$(PY) -m protocols.export_schemas

# MicroPython built from MICROPYTHON_SRC (copied to build/micropython/src, never built in place):
# mpy-cross, the 32-bit unix port and the same with the node frozen in; each rebuilt only when
# the source or the firmware changed (tests/harness/mpbuild.py). No source: the 32-bit tests skip.
micropython: venv
	$(PY) -m tests.harness.mpbuild

mpy: venv
	$(PY) -m tests.harness.mpy build/mpy

run: deps
	$(PY) -m controller.devstack

clean:
	rm -rf build var .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
	rm -rf $(VENV)

.PHONY: bench bench-ingest bench-store bench-firmware bench-api bench-sim bench-soak demo-data serve node-virtual sim
bench: bench-ingest bench-store bench-firmware bench-api bench-sim bench-soak

bench-ingest: deps
	$(PY) -m tests.bench.bench_ingest

bench-store: deps
	$(PY) -m tests.bench.bench_store

bench-firmware: deps
	$(PY) -m tests.bench.bench_firmware

bench-api: deps
	$(PY) -m tests.bench.bench_api

bench-sim: deps
	$(PY) -m tests.bench.bench_sim

# the controller soak at full length (`make test` runs a short one)
bench-soak: deps
	$(PY) -m tests.bench.bench_soak

# Open data without a street: a deterministic sample in the default store, then the controller
# alone (no broker needed), port from PORT (default 8000).
demo-data: venv
	$(PY) -m controller.opendata.demo

serve: venv
	STREETPOLE_INGEST_ENABLED=$${STREETPOLE_INGEST_ENABLED:-false} \
	STREETPOLE_DISPATCH_ENABLED=$${STREETPOLE_DISPATCH_ENABLED:-false} \
	$(BIN)/uvicorn --factory controller.app:create_app --host 127.0.0.1 --port $${PORT:-8000}

# A MicroPython node behind a pseudo-terminal, for practising the `streetpole node` commands.
node-virtual: venv
	$(BIN)/streetpole node virtual --flash var/vnode

# A living street against `make run` (TOKEN from `.venv/bin/streetpole create-token admin`).
sim: venv
	STREETPOLE_TOKEN="$${STREETPOLE_TOKEN:-$$TOKEN}" $(PY) -m simulator --poles 50 \
	  --layout simulator/data/rotterdam-zuid.geojson \
	  --api http://127.0.0.1:$${PORT:-8000} --speed 60 --scenario simulator/scenarios/night.json --html var/sim-report.html

# Map and chart libraries for the dashboard: from the npm registry (versions pinned by the
# lockfile), copied into a git-ignored vendor folder and served by the controller; no CDN.
VENDOR := controller/dashboard/static/vendor/.stamp
assets: $(VENDOR)
$(VENDOR): controller/dashboard/package.json controller/dashboard/package-lock.json | venv
	@command -v npm >/dev/null 2>&1 || { echo "npm missing: install Node.js 20 (Debian: nodejs npm)"; exit 1; }
	npm ci --prefix controller/dashboard --ignore-scripts --no-audit --no-fund
	$(PY) -m controller.dashboard.copy_assets
	@touch $@

screenshots: deps
	STREETPOLE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/test_dashboard_e2e.py
