"""The Dagster instance on a real PostgreSQL (`infra/pglocal.py`, as `make pg-up` starts it): a daemon's sensor
finds two checkpoints and the run queue analyses both at once, in runs whose times overlap; the server stops with
no process left behind, and a command run then says in one line that it does not answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from compute.processes import stop_group
from compute.settings import from_env
from infra import pglocal
from orchestration.app.demo import ensure_dagster_home
from orchestration.app.live import start_daemon, wait_for
from orchestration.automation.instance import analysed, last_runs
from tests.conftest import BASE_ASSETS, materialise
from tests.procs import processes

KEYS = ["rl-step-000002", "rl-step-000004"]


@pytest.mark.slow
def test_two_checkpoints_are_analysed_at_once_on_postgres(small_world, tmp_path, monkeypatch):
    state = Path(tempfile.mkdtemp(prefix="shiftlake-pg-", dir="/tmp"))  # the postgres user must reach it
    state.chmod(0o755)
    server = pglocal.start(state, pglocal.free_port())
    try:
        env = {"DAGSTER_HOME": str(tmp_path / "dagster"), "DAGSTER_PG_URL": server.url,
               "LAKE_URL": str(tmp_path / "lake"), "BASE_MODEL": str(small_world / "base"),
               "CHECKPOINTS_URL": str(small_world / "checkpoints"),
               "PROBLEMS_URL": str(small_world / "problems.jsonl"), "SHIFTLAKE_SAMPLES_PER_PROBLEM": "2",
               "SHIFTLAKE_SENSOR_INTERVAL_S": "2", "SHIFTLAKE_CROSS_EPS_JS": "0.01,0.1"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        home = ensure_dagster_home()
        assert "DAGSTER_PG_URL" in (home / "dagster.yaml").read_text()
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert materialise(from_env(), instance, BASE_ASSETS).success  # the base first, as the demo does
        daemon = start_daemon({**os.environ, **env}, log_file=tmp_path / "daemon.log")
        try:
            with dg.DagsterInstance.get() as instance:
                def finished():  # the last asset lands before its run ends (checks, the run's own end)
                    runs = instance.get_runs(dg.RunsFilter(job_name="checkpoint_job"))
                    done = analysed(instance, KEYS) == set(KEYS) and all(r.is_finished for r in runs)
                    return runs if done else None

                runs = wait_for(finished, timeout=600, what="the analysis of both checkpoints and the end of its runs")
                assert sorted(r.tags["dagster/partition"] for r in runs) == KEYS
                assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), last_runs(instance, KEYS)
                records = [instance.get_run_record_by_id(r.run_id) for r in runs]
                starts, ends = [r.start_time for r in records], [r.end_time for r in records]
                print(f"\ncheckpoint runs: {[round(e - s, 1) for s, e in zip(starts, ends)]} s each, overlapping "
                      f"{min(ends) - max(starts):.1f} s")
                assert max(starts) < min(ends)  # at once: each started before the other ended
        finally:
            stop_group(daemon)
    finally:
        pglocal.stop(state)
        shutil.rmtree(state, ignore_errors=True)
    left = [cmd for _, cmd in processes().values() if str(state) in cmd]
    assert not left, left
    # with the server stopped, a command says so in one line, with the fix
    done = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "status"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        "shiftlake status: the Dagster instance's PostgreSQL (DAGSTER_PG_URL) does not answer")
    assert "make pg-up" in done.stderr
