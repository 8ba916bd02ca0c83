"""The code location, loaded by its module name as `dagster dev -m` and the daemon load it: the application
runs its jobs and reads its assets without importing the definitions module (which nothing imports)."""

from __future__ import annotations

import importlib

import dagster as dg

CODE_LOCATION = "orchestration.definitions"  # also pyproject.toml's [tool.dagster] module_name


def load() -> dg.Definitions:
    """The code location's `defs`: built from the environment on the first call (set it before), the same
    object after."""
    return importlib.import_module(CODE_LOCATION).defs
