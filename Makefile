# shiftlake: `make demo` runs the study on the toy world, `make test` runs the tests, `make ui` opens Dagster.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.shiftlake/dagster

.PHONY: install demo test ui bench clean s3-up s3-down

install: $(STAMP)

# torch first, pinned to the CPU build this machine carries; then the project with its dev extras.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/shiftlake demo

test: $(STAMP)
	$(PY) -m pytest -q

ui: $(STAMP)
	$(VENV)/bin/shiftlake ui

bench: $(STAMP)
	$(VENV)/bin/shiftlake bench

# a local SeaweedFS S3 server (data in .shiftlake/s3/); prints the environment and writes infra/s3.env
s3-up: $(STAMP)
	$(PY) infra/s3local.py up

s3-down: $(STAMP)
	$(PY) infra/s3local.py down

clean:
	rm -rf lake .shiftlake/dagster
