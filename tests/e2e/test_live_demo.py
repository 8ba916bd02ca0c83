"""`shiftlake demo --live` on the small world: GRPO writes checkpoints into an empty folder while the
daemon runs, and every checkpoint ends up analysed and in the trend, without anyone asking."""

import os
import subprocess
import sys

import polars as pl
import pytest


@pytest.mark.slow
def test_live_demo_analyses_checkpoints_as_training_writes_them(small_world, world_root, tmp_path):
    env = {**os.environ, "SHIFTLAKE_CACHE": str(world_root.parent), "SHIFTLAKE_TOY_WORLD": "small",
           "SHIFTLAKE_LIVE_DIR": str(tmp_path / "live"), "SHIFTLAKE_SAMPLES_PER_PROBLEM": "2",
           "SHIFTLAKE_SENSOR_INTERVAL_S": "2", "SHIFTLAKE_CROSS_EPS_JS": "0.01,0.1"}
    for var in ("BASE_MODEL", "CHECKPOINTS_URL", "PROBLEMS_URL", "LAKE_URL", "DAGSTER_HOME"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo", "--live", "--no-ui"], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    for key in ("rl-step-000002", "rl-step-000004"):
        assert f"{key}: summaries queryable" in out.stdout
    trend = pl.read_parquet(tmp_path / "live" / "lake" / "trend" / "data.parquet")
    assert trend["step"].to_list() == [2, 4]
    written = sorted(p.name for p in (tmp_path / "live" / "checkpoints").iterdir())
    assert written == ["checkpoint-2", "checkpoint-4"]
