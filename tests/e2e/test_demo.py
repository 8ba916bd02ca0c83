"""`shiftlake demo` end to end on the small world: a real persistent Dagster instance, a fresh lake,
the summary printed, and one successful materialisation per asset and checkpoint in the event log."""

import os
import subprocess
import sys

import dagster as dg


def test_demo_runs_every_asset_and_prints_the_summary(small_world, world_root, tmp_path):
    env = {**os.environ, "SHIFTLAKE_CACHE": str(world_root.parent), "SHIFTLAKE_TOY_WORLD": "small",
           "LAKE_URL": str(tmp_path / "lake"), "DAGSTER_HOME": str(tmp_path / "dagster"),
           "SHIFTLAKE_SAMPLES_PER_PROBLEM": "2"}
    for var in ("BASE_MODEL", "CHECKPOINTS_URL", "PROBLEMS_URL"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-m", "orchestration.cli", "demo"], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cached at" in out.stdout  # the session's small world, not a new one
    for key in ("rl-step-000002", "rl-step-000004"):
        assert key in out.stdout
    assert "shiftlake sql" in out.stdout and "wall time per stage" in out.stdout
    assert (tmp_path / "lake" / "token_shifts" / "checkpoint=rl-step-000004" / "data.parquet").exists()

    os.environ["DAGSTER_HOME"], saved = str(tmp_path / "dagster"), os.environ.get("DAGSTER_HOME")
    try:
        with dg.DagsterInstance.get() as instance:
            for asset in ("rollouts", "token_shifts", "summaries"):
                records = instance.fetch_materializations(dg.AssetKey(asset), limit=10).records
                assert sorted(r.partition_key for r in records) == ["rl-step-000002", "rl-step-000004"]
            assert len(instance.fetch_materializations(dg.AssetKey("base_rollouts"), limit=10).records) == 1
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME")
        else:
            os.environ["DAGSTER_HOME"] = saved
