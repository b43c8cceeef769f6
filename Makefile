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

# `make help` lists every target that has a `## ` line after its name (tests/test_makefile.py
# checks that every .PHONY target has one).
help: ## this list
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^=]*## / {printf "make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: apt venv assets micropython ## everything the others need: apt, venv, assets, micropython (then .venv/bin/streetpole)

# Debian packages: installed only when a command they provide is missing.
apt: ## the Debian packages deps needs (mosquitto, chromium, npm, postgresql, ...), when missing
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

venv: $(STAMP) ## .venv with every Python package, versions from constraints.txt

# The checkout installed editable with every extra (requirements.txt), so the packages import from
# here and .venv/bin/streetpole is the console script of pyproject.toml.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -r requirements.txt
	@touch $@

# Re-pin every Python package (run by a developer, result committed).
lock: ## re-pin every Python package into constraints.txt (commit the result)
	rm -rf /tmp/streetpole-lock && $(PYTHON) -m venv /tmp/streetpole-lock
	/tmp/streetpole-lock/bin/pip install -q -r requirements.txt
	/tmp/streetpole-lock/bin/pip freeze --exclude-editable > constraints.txt

# Two workers (pytest-xdist), a test file each at a time: most tests wait on brokers, nodes
# and browsers more than they compute. TEST_WORKERS=0 runs in this process (a debugger, -s).
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

test: deps ## install what is missing and run the whole test suite (PYTEST_ARGS=..., TEST_WORKERS=2)
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

# The inner loop: every test not marked slow (a few seconds or more); `make test` runs them all.
test-fast: deps ## the suite without the tests marked slow (the inner loop)
	$(BIN)/pytest $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: venv ## ruff check, ruff format --check and mypy (strict)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv ## ruff format and ruff check --fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

schemas: venv ## regenerate protocols/schemas/*.json from protocols/schema_defs.py
	$(PY) -m protocols.export_schemas

# MicroPython built from MICROPYTHON_SRC (copied to build/micropython/src, never built in place):
# mpy-cross, the 32-bit unix port and the same with the node frozen in; each rebuilt only when
# the source or the firmware changed (tests/harness/mpbuild.py). No source: the 32-bit tests skip.
micropython: venv ## mpy-cross, the 32-bit unix port and the frozen node from MICROPYTHON_SRC (part of deps)
	$(PY) -m tests.harness.mpbuild

mpy: venv ## compile the modules tests/mp/manifest.py lists to .mpy into build/mpy
	$(PY) -m tests.harness.mpy build/mpy

run: deps ## start broker, controller and a simulated street (20 poles); prints where to look
	$(PY) -m controller.devstack

clean: ## remove build output, caches and the venv
	rm -rf build var .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -prune -exec rm -rf {} +
	rm -rf $(VENV)

.PHONY: bench bench-ingest bench-scale bench-store bench-firmware bench-api bench-sim bench-soak demo-data serve node-virtual sim
bench: bench-ingest bench-store bench-firmware bench-api bench-sim bench-soak ## every benchmark: ingest, store, firmware, API, simulator, soak

bench-ingest: deps ## benchmark: MQTT ingest into the store
	$(PY) -m tests.bench.bench_ingest

# PostgreSQL time-series store (issue #23): throughput and bytes per reading on the ingest street
bench-scale: deps ## benchmark: the PostgreSQL time-series store at scale (issue #23)
	$(PY) -m tests.bench.bench_scale

bench-store: deps ## benchmark: the time-series store
	$(PY) -m tests.bench.bench_store

bench-firmware: deps ## benchmark: firmware heap and speed on MicroPython
	$(PY) -m tests.bench.bench_firmware

bench-api: deps ## benchmark: the open-data API
	$(PY) -m tests.bench.bench_api

bench-sim: deps ## benchmark: the simulator
	$(PY) -m tests.bench.bench_sim

# the controller soak at full length (`make test` runs a short one)
bench-soak: deps ## the controller soak at full length (make test runs a short one)
	$(PY) -m tests.bench.bench_soak

# Open data without a street: a deterministic sample in the default store, then the controller
# alone (no broker needed), port from PORT (default 8000).
demo-data: venv ## a deterministic sample street in the default store (open data without a street)
	$(PY) -m controller.opendata.demo

serve: venv ## the controller alone, no broker (PORT, default 8000): with demo-data
	STREETPOLE_INGEST_ENABLED=$${STREETPOLE_INGEST_ENABLED:-false} \
	STREETPOLE_DISPATCH_ENABLED=$${STREETPOLE_DISPATCH_ENABLED:-false} \
	$(BIN)/uvicorn --factory controller.app:create_app --host 127.0.0.1 --port $${PORT:-8000}

# A MicroPython node behind a pseudo-terminal, for practising the `streetpole node` commands.
node-virtual: venv ## a virtual node for technician practice (streetpole node virtual)
	$(BIN)/streetpole node virtual --flash var/vnode

# A living street of 50 poles of its own (ids DEV-, a grid just north of `make run`'s street) against
# `make run`'s controller and broker, on the ports make run honours (PORT, MQTT_PORT, MQTTS_PORT,
# MQTT_TLS); TOKEN from `.venv/bin/streetpole create-token admin`. Exits 1, saying why, when no
# node gets connected.
SIM_BROKER = $(if $(filter 0,$(MQTT_TLS)),mqtt://127.0.0.1:$(or $(MQTT_PORT),1883),mqtts://127.0.0.1:$(or $(MQTTS_PORT),8883))
sim: venv ## 50 more poles (DEV-) against `make run` (TOKEN=...); report in var/sim-report.html
	STREETPOLE_TOKEN="$${STREETPOLE_TOKEN:-$$TOKEN}" $(PY) -m simulator --poles 50 \
	  --layout grid --origin 51.8930,4.4960 --prefix DEV- --broker $(SIM_BROKER) \
	  --api http://127.0.0.1:$${PORT:-8000} --speed 60 --scenario simulator/scenarios/night.json --html var/sim-report.html

# Map and chart libraries for the dashboard: from the npm registry (versions pinned by the
# lockfile), copied into a git-ignored vendor folder and served by the controller; no CDN.
VENDOR := controller/dashboard/static/vendor/.stamp
assets: $(VENDOR) ## map, chart, API-docs and audit libraries from npm into the dashboard (part of deps)
$(VENDOR): controller/dashboard/package.json controller/dashboard/package-lock.json | venv
	@command -v npm >/dev/null 2>&1 || { echo "npm missing: install Node.js 20 (Debian: nodejs npm)"; exit 1; }
	npm ci --prefix controller/dashboard --ignore-scripts --no-audit --no-fund
	$(PY) -m controller.dashboard.copy_assets
	@touch $@

screenshots: deps ## regenerate docs/screenshots from the end-to-end dashboard tests
	STREETPOLE_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/test_dashboard_e2e.py tests/test_dashboard_ops_e2e.py
