# shiftlake: `make demo` runs the study on the toy world, `make test` runs the tests, `make ui` opens Dagster.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := $(VENV)/.runtime
STAMP := $(VENV)/.installed
UV := $(VENV)/bin/uv
TORCH := torch==2.13.0
UV_PIN := uv==0.13.9
# every runtime dependency at the lowest release pyproject.toml accepts (uv's lowest-direct resolution), torch among
# them, on the lowest Python requires-python accepts: tests/compute/test_floor.py runs the toy study, the lake's SQL,
# KV-cache decoding and a LoRA merge there
FLOOR := .shiftlake/venv-floor/.installed
FLOOR_PYTHON ?= python3.11
export DAGSTER_HOME ?= $(CURDIR)/.shiftlake/dagster
CHROMIUM ?= $(or $(SHIFTLAKE_CHROMIUM),$(shell command -v chromium),/usr/bin/chromium)
# the suite runs on this many pytest-xdist workers, each taking whole modules, longest first (tests/conftest.py)
TEST_WORKERS ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser demo test ui bench clean s3-up s3-down pg-up pg-down

install: $(STAMP) $(FLOOR)

# pip puts in torch, pinned to the CPU build this machine carries on disk, and uv; uv installs the rest, keeping
# that torch (it resolves and downloads in parallel: about 15 s where pip took 2-3 minutes here). The demo and the
# UI need the project alone, installed without bytecode: what is imported compiles on first use. The tests add its
# dev extras, and compile the environment's bytecode: where PYTHONDONTWRITEBYTECODE is set (as on this project's
# machines) Python caches nothing it compiles, and each of the suite's processes (Dagster runs, code servers,
# daemons, Ray workers) compiled dagster, torch and transformers again: a failing `shiftlake demo` spent 31 s of CPU,
# 14 s with the bytecode there. (uv's --compile-bytecode compiles only what that command installs: torch, dagster
# and transformers come with the runtime.) A file or two written for newer Pythons do not compile (torch's
# py312_intrinsics.py, a test helper): nothing here imports them.
compile = $(1) -m compileall -qq -j 0 "$$($(1) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" || true
$(RUNTIME): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile $(TORCH) $(UV_PIN)
	$(UV) pip install -q --python $(PY) $(TORCH) -e .
	touch $@

$(STAMP): $(RUNTIME)
	$(UV) pip install -q --python $(PY) $(TORCH) -e '.[dev]'
	$(call compile,$(PY))
	touch $@

# The floor's torch is PyPI's CUDA build (about 3 GB with its NVIDIA libraries; the CPU build on this machine's disk
# is 2.13 only): it runs on the CPU, where the floor test keeps it. uv writes the floors down (floors.txt) and
# syncs the venv to exactly that list, keeping what it already holds at the right release.
$(FLOOR): pyproject.toml $(RUNTIME)
	test -x $(dir $(FLOOR))bin/python || $(FLOOR_PYTHON) -m venv $(dir $(FLOOR))
	$(UV) pip compile -q --python $(dir $(FLOOR))bin/python --resolution lowest-direct pyproject.toml \
	  -o $(dir $(FLOOR))floors.txt
	$(UV) pip sync -q --python $(dir $(FLOOR))bin/python $(dir $(FLOOR))floors.txt
	$(UV) pip install -q --python $(dir $(FLOOR))bin/python --no-deps -e .
	$(call compile,$(dir $(FLOOR))bin/python)
	touch $@

demo: $(RUNTIME)
	$(VENV)/bin/shiftlake demo

# the browser tests drive Debian's Chromium through Playwright (no browser download)
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# the project's own modules compiled too (a second or so), for the same reason as the environment's
test: $(STAMP) $(FLOOR) browser
	$(PY) -m compileall -q -j 0 compute assets orchestration infra tests
	SHIFTLAKE_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

ui: $(RUNTIME)
	$(VENV)/bin/shiftlake ui

bench: $(STAMP)
	$(VENV)/bin/shiftlake bench

# a local SeaweedFS S3 server (data in .shiftlake/s3/); prints the environment and writes infra/s3.env
s3-up: $(STAMP)
	$(PY) -m infra.s3local up

s3-down: $(STAMP)
	$(PY) -m infra.s3local down

# a local PostgreSQL for the Dagster instance (Debian's postgresql; data in .shiftlake/postgres/, generated
# password); prints DAGSTER_PG_URL and writes infra/pg.env
pg-up: $(STAMP)
	$(PY) -m infra.pglocal up

pg-down: $(STAMP)
	$(PY) -m infra.pglocal down

clean:
	rm -rf lake .shiftlake/dagster
