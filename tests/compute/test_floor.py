"""Declared ranges are promises: the lowest transformers that pyproject.toml accepts must decode right.

`make install` builds a venv with torch and exactly that floor release (.shiftlake/venv-floor); the KV-cache
check (kv_cache_check.py) runs there. On transformers 5.0-5.17 shiftlake once passed its cache under a
keyword those releases ignore, and every rollout was sampled without its prefix, with no error.
"""

import re
import sys
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FLOOR_VENV = ROOT / ".shiftlake" / "venv-floor"


def declared_floor(package: str) -> str:
    match = re.search(rf'"{package}>=([0-9.]+)', (ROOT / "pyproject.toml").read_text())
    assert match, f"pyproject.toml declares no floor for {package}"
    return match.group(1)


def test_kv_cache_decoding_is_right_on_the_declared_transformers_floor():
    python = FLOOR_VENV / "bin" / "python"
    assert python.exists(), f"no floor venv at {FLOOR_VENV}: run `make install` (it builds it)"
    installed = subprocess.run([str(python), "-c", "import transformers; print(transformers.__version__)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert Version(installed) == Version(declared_floor("transformers")), f"the floor venv holds {installed}: rerun `make install`"
    done = subprocess.run([str(python), str(ROOT / "tests" / "compute" / "kv_cache_check.py")], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"transformers {installed}" in done.stdout and "equals re-encoding" in done.stdout


@pytest.mark.parametrize("lake", ["local"], indirect=True)  # the floor venv reads local files (no s3fs)
def test_every_table_and_query_computes_the_same_on_the_declared_duckdb_polars_and_pyarrow_floors(lake, tmp_path):
    """token_drilldown's `lambda x:` needs duckdb 1.3; pyproject.toml declared 1.2, where it did not parse."""
    import polars as pl
    from polars.testing import assert_series_equal

    url, _ = lake
    python = FLOOR_VENV / "bin" / "python"
    check = ROOT / "tests" / "sql" / "sql_floor_check.py"
    versions = subprocess.run([str(python), "-c", "import duckdb, polars, pyarrow; print(duckdb.__version__, "
                               "polars.__version__, pyarrow.__version__)"], capture_output=True, text=True, check=True)
    installed = dict(zip(("duckdb", "polars", "pyarrow"), versions.stdout.split()))
    for package, version in installed.items():
        assert Version(version) == Version(declared_floor(package)), f"the floor venv holds {package} {version}: rerun `make install`"
    results = {}
    for name, interpreter in (("floor", str(python)), ("project", sys.executable)):
        done = subprocess.run([interpreter, str(check), url, str(tmp_path / name)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        results[name] = {p.name: pl.read_parquet(p) for p in sorted((tmp_path / name).glob("*.parquet"))}
    assert results["floor"].keys() == results["project"].keys() and len(results["project"]) >= 15
    for name, frame in results["project"].items():
        floor = results["floor"][name]
        assert floor.columns == frame.columns, name
        for column in frame.columns:  # sums may add up in another order: floats equal to 1e-9
            try:
                assert_series_equal(frame[column], floor[column], rel_tol=1e-9, abs_tol=1e-12)
            except AssertionError as e:
                raise AssertionError(f"{name} {column}: {e}") from None
