# shiftlake: `make demo` runs the study on the toy world, `make test` runs the tests, `make ui` opens Dagster.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.shiftlake/dagster

.PHONY: install demo test ui bench clean

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

clean:
	rm -rf lake .shiftlake/dagster
