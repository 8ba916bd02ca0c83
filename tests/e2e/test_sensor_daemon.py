"""A real Dagster daemon on a temporary instance: a checkpoint dropped into the watched folder is found
by the sensor, registered and analysed end to end by one run, and nothing else is recomputed; the trend
and the report follow by declarative automation. Proven from the instance's event log."""

import os
import shutil
import subprocess
import sys
import time

import dagster as dg
import pytest

from compute.processes import stop_group as stop
from orchestration.app.live import start_daemon, wait_for
from orchestration.automation.instance import materialisation_counts, materialised_at
from tests.conftest import CHECKPOINT_ASSETS

BASE_ASSETS = ["problems", "base_model", "base_rollouts", "base_scores"]


@pytest.mark.slow
def test_daemon_analyses_a_new_checkpoint_and_nothing_else(small_world, tmp_path, monkeypatch):
    watched = tmp_path / "checkpoints"
    watched.mkdir()
    shutil.copytree(small_world / "checkpoints" / "checkpoint-2", watched / "checkpoint-2")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "LAKE_URL": str(tmp_path / "lake"),
           "BASE_MODEL": str(small_world / "base"), "CHECKPOINTS_URL": str(watched),
           "PROBLEMS_URL": str(small_world / "problems.jsonl"), "SHIFTLAKE_SAMPLES_PER_PROBLEM": "2",
           "SHIFTLAKE_SENSOR_INTERVAL_S": "2", "SHIFTLAKE_CROSS_EPS_JS": "0.01,0.1"}
    # checkpoint-2 analysed before the daemon starts, by the demo on the same instance
    done = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        before = {**materialisation_counts(instance, CHECKPOINT_ASSETS, "rl-step-000002"),
                  **materialisation_counts(instance, BASE_ASSETS, None)}
        assert set(before.values()) == {1}
        trend_before = materialised_at(instance, "trend")
    daemon = start_daemon(env, log_file=tmp_path / "daemon.log")
    try:
        time.sleep(3)
        landed = time.time()
        shutil.copytree(small_world / "checkpoints" / "checkpoint-4", watched / "checkpoint-4")
        with dg.DagsterInstance.get() as instance:
            last = wait_for(lambda: all(materialised_at(instance, a, "rl-step-000004") for a in CHECKPOINT_ASSETS)
                            and max(materialised_at(instance, a, "rl-step-000004") for a in CHECKPOINT_ASSETS),
                            timeout=300, what="the analysis of rl-step-000004")
            print(f"\ncheckpoint landed -> every asset of its partition materialised: {last - landed:.1f} s "
                  f"(sensor interval 2 s)")
            by_sensor = dg.RunsFilter(tags={"dagster/sensor_name": "checkpoint_sensor"})
            wait_for(lambda: [r for r in instance.get_runs(by_sensor) if r.is_finished] or None, timeout=60,
                            what="the end of the sensor's run")
            assert [(r.tags.get("dagster/partition"), r.status) for r in instance.get_runs(by_sensor)] == \
                [("rl-step-000004", dg.DagsterRunStatus.SUCCESS)]
            assert "rl-step-000004" in instance.get_dynamic_partitions("checkpoints")
            wait_for(lambda: (materialised_at(instance, "trend") or 0) > last, timeout=120,
                     what="the trend's refresh by declarative automation")
            after = {**materialisation_counts(instance, CHECKPOINT_ASSETS, "rl-step-000002"),
                     **materialisation_counts(instance, BASE_ASSETS, None)}
            assert after == before  # 0 re-materialisations of the other partition or of the base
            assert materialised_at(instance, "trend") > trend_before
            # then the new checkpoint's report, also by automation, after the trend it shows
            wait_for(lambda: (materialised_at(instance, "report", "rl-step-000004") or 0)
                     > materialised_at(instance, "trend"), timeout=120, what="the report's refresh by automation")
    finally:
        stop(daemon)
    assert daemon.returncode is not None
