"""Declared ranges are promises: every runtime dependency at the lowest release pyproject.toml accepts must
compute what the project's own releases compute.

`make install` builds a venv holding exactly those floors, torch among them (.shiftlake/venv-floor). There the toy
study runs through Dagster into a lake whose tables must equal the `lake` fixture's; the KV-cache check
(kv_cache_check.py), the lake's SQL (sql_floor_check.py) and the merge of a TRL-written LoRA adapter run there
too. On transformers 5.0-5.17 shiftlake once passed its cache under a keyword those releases ignore, and every
rollout was sampled without its prefix, with no error; on polars 1.30 and 1.31 (the floor declared then) the
rollouts' digest failed on their token lists.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from dataclasses import fields
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from compute.settings import env_name
from tests.conftest import study_settings
from tests.lakes import assert_same_frame, assert_same_tables

ROOT = Path(__file__).resolve().parents[2]
FLOOR_VENV = ROOT / ".shiftlake" / "venv-floor"
PYTHON = FLOOR_VENV / "bin" / "python"


def on_cpu(**extra) -> dict[str, str]:
    """The environment now, plus `extra`, with no GPU visible: the floor's torch is a CUDA build, and the fixtures
    it is compared with ran on the CPU."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", **extra}


def declared_floors() -> dict[str, str]:
    """Each runtime dependency's floor, as pyproject.toml declares it (name -> release), and Python's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {"python": project["requires-python"].removeprefix(">=")}
    for requirement in map(Requirement, project["dependencies"]):
        lowest = [s.version for s in requirement.specifier if s.operator == ">="]
        assert len(lowest) == 1, f"pyproject.toml declares no floor for {requirement.name}"
        floors[requirement.name] = lowest[0]
    return floors


def test_the_floor_venv_holds_every_declared_floor():
    assert PYTHON.exists(), f"no floor venv at {FLOOR_VENV}: run `make install` (it builds it)"
    floors = declared_floors()
    done = subprocess.run([str(PYTHON), "-c", "import importlib.metadata as m, json, platform, sys; print(json.dumps("
                           "{'python': platform.python_version(), **{n: m.version(n) for n in sys.argv[1:]}}))",
                           *[name for name in floors if name != "python"]], capture_output=True, text=True, check=True)
    installed = json.loads(done.stdout)
    python = ".".join(installed["python"].split(".")[:2])
    assert python == floors["python"], (f"the floor venv runs Python {installed['python']}, the floors are those of "
                                        f"Python {floors['python']}: remove {FLOOR_VENV} and run `make install` "
                                        f"FLOOR_PYTHON=python{floors['python']}")
    del floors["python"]
    off = {name: f"{installed[name]} installed, {floor} declared" for name, floor in floors.items()
           if Version(installed[name]) != Version(floor)}
    assert not off, (f"the floor venv does not hold the declared floors: {off}. Rerun `make install`; where uv "
                     "cannot install a floor beside the others, raise it in pyproject.toml to the release it installs")


def test_kv_cache_decoding_is_right_on_the_declared_transformers_floor():
    done = subprocess.run([str(PYTHON), str(ROOT / "tests" / "compute" / "kv_cache_check.py")], capture_output=True,
                          text=True, timeout=300, env=on_cpu())
    assert done.returncode == 0, done.stdout + done.stderr
    release = re.search(r"transformers (\S+), torch", done.stdout)
    assert release and Version(release[1]) == Version(declared_floors()["transformers"]), done.stdout
    assert "equals re-encoding" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_the_toy_study_from_s3_computes_every_table_the_same_on_the_declared_floors(lake, small_world, small_ab,
                                                                                    s3_server, tmp_path):
    """`shiftlake demo` under the floor venv, on the `lake` fixture's small world and settings, its checkpoints and
    its lake on the SeaweedFS server (the floor's s3fs lists, fetches and writes): every asset through Dagster (its
    checks on the floor's Great Expectations, its reports written by the floor's matplotlib), every table equal to
    the local fixture's, exactly (polars equality; same seeds: torch 2.5's CPU kernels draw the tokens 2.13's do)."""
    from compute import storage

    url, keys = lake
    checkpoints = f"s3://shiftlake/floor-{uuid.uuid4().hex[:8]}/checkpoints"
    fs = storage.filesystem(checkpoints)
    for folder in sorted((small_world / "checkpoints").iterdir()):
        fs.put(str(folder), f"{checkpoints}/{folder.name}", recursive=True)
    settings = study_settings(small_world, checkpoints.replace("/checkpoints", "/lake"), checkpoints_url=checkpoints,
                              ab_curves_url=str(small_ab))
    env = on_cpu(DAGSTER_HOME=str(tmp_path / "dagster"), SHIFTLAKE_CACHE=str(tmp_path / "cache"),
                 **{env_name(f.name): str(getattr(settings, f.name)) for f in fields(settings)})
    done = subprocess.run([str(PYTHON), "-m", "orchestration.app.cli", "demo"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_same_tables(settings.lake_url, url, ignore=("uri",))  # where each checkpoint was read from aside
    for key in keys:
        assert fs.size(f"{settings.lake_url}/reports/checkpoint={key}/report.html") > 0


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_every_table_and_query_computes_the_same_on_the_declared_duckdb_polars_and_pyarrow_floors(lake, tmp_path):
    """token_drilldown's `lambda x:` needs duckdb 1.3; pyproject.toml declared 1.2, where it did not parse."""
    import polars as pl

    url, _ = lake
    check = ROOT / "tests" / "sql" / "sql_floor_check.py"
    results = {}
    for name, interpreter in (("floor", str(PYTHON)), ("project", sys.executable)):
        done = subprocess.run([interpreter, str(check), url, str(tmp_path / name)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        results[name] = {p.name: pl.read_parquet(p) for p in sorted((tmp_path / name).glob("*.parquet"))}
    assert results["floor"].keys() == results["project"].keys() and len(results["project"]) >= 15
    for name, frame in results["project"].items():  # sums may add up in another order: floats equal to 1e-9
        assert_same_frame(name, results["floor"][name], frame, rel_tol=1e-9, abs_tol=1e-12)


def test_a_trl_lora_checkpoint_merges_the_same_on_the_declared_peft_floor(small_world, tmp_path):
    """The floor's peft merges a LoRA adapter TRL wrote (one GRPO step; `merge_adapter` fails unless the merged
    folder gives PeftModel's logits) into the weights the project's own releases merge."""
    import torch
    from safetensors.torch import load_file

    from compute.peft_merge import merge_adapter
    from tests.trainers import trl_checkpoints

    adapter = trl_checkpoints(small_world / "base", tmp_path / "run", peft=True, steps=1) / "checkpoint-1"
    code = "import sys; from compute.peft_merge import merge_adapter; merge_adapter(*sys.argv[1:])"
    done = subprocess.run([str(PYTHON), "-c", code, str(small_world / "base"), str(adapter), str(tmp_path / "floor")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=on_cpu())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    merge_adapter(small_world / "base", adapter, tmp_path / "project")
    floor, project = (load_file(tmp_path / name / "model.safetensors") for name in ("floor", "project"))
    base = load_file(small_world / "base" / "model.safetensors")
    assert floor.keys() == project.keys()
    for name, weight in project.items():
        torch.testing.assert_close(floor[name], weight, msg=name)
    assert any(not torch.equal(weight, base[name]) for name, weight in project.items() if name in base)  # it merged
