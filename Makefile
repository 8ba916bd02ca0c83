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

$(DAGSTER_HOME)/dagster.yaml: infra/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp infra/dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/shiftlake demo

test: $(STAMP)
	$(PY) -m pytest -q

ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -m orchestration.definitions

bench: $(STAMP)
	$(VENV)/bin/shiftlake bench

clean:
	rm -rf lake .shiftlake/dagster
