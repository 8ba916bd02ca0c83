"""The code location loads with every asset, partition and job the UI and the demo rely on; its lake IO manager
tells a rerun that wrote the same rows."""

import subprocess
import sys

import dagster as dg
import polars as pl

from compute.paths import REPO_ROOT
from orchestration.definitions import defs


def test_definitions_load_with_every_asset_and_job():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {"problems", "base_model", "base_rollouts", "base_scores", "checkpoints", "rollouts",
                    "token_shifts", "advantage_weights", "scores", "summaries", "cross_samples", "cross_scores",
                    "cross_summaries", "trend", "training_curves", "report"}
    for name in ("base_job", "checkpoint_job", "trend_job", "report_job"):
        assert defs.resolve_job_def(name) is not None
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert all(s.code_version for s in specs.values())
    partitioned = {k for k, s in specs.items() if s.partitions_def is not None}
    assert partitioned == {"checkpoints", "rollouts", "token_shifts", "advantage_weights", "scores", "summaries",
                           "cross_samples", "cross_scores", "cross_summaries", "report"}
    assert isinstance(specs["rollouts"].partitions_def, dg.DynamicPartitionsDefinition)
    # on by default: new checkpoints are picked up and stale partitions reanalysed without anyone asking
    for sensor in ("checkpoint_sensor", "trend_automation"):
        assert defs.resolve_sensor_def(sensor).default_status == dg.DefaultSensorStatus.RUNNING
        assert defs.resolve_sensor_def(sensor).description  # the Automation page says what each one does
    assert "CHECKPOINTS_URL" in defs.resolve_sensor_def("checkpoint_sensor").description
    assert "stale" in defs.resolve_schedule_def("reanalysis_schedule").description
    # the group of each checkpoint's analysis is not also called "checkpoint(s)" like the asset and the partitions
    assert {s.group_name for s in specs.values()} == {"inputs", "base", "analysis", "trend", "report"}
    schedule = defs.resolve_schedule_def("reanalysis_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING and schedule.cron_schedule == "0 3 * * *"
    assert specs["trend"].automation_condition is not None and specs["report"].automation_condition is not None
    assert specs["rollouts"].partitions_def.name == "checkpoints"


def test_run_config_overrides_any_subset_of_the_study(small_world, tmp_path, monkeypatch):
    """Fields left out of run config come from the environment at run time; given ones win."""
    import polars as pl

    monkeypatch.setenv("BASE_MODEL", str(small_world / "base"))
    monkeypatch.setenv("CHECKPOINTS_URL", str(small_world / "checkpoints"))
    monkeypatch.setenv("PROBLEMS_URL", str(small_world / "problems.jsonl"))
    monkeypatch.setenv("SHIFTLAKE_MAX_NEW_TOKENS", "7")
    run_config = {
        "resources": {"study": {"config": {"samples_per_problem": 1, "temperature": 0.5}},
                      "io_manager": {"config": {"lake_url": str(tmp_path)}}},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    result = defs.resolve_job_def("base_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config)
    assert result.success
    rollouts = pl.read_parquet(tmp_path / "rollouts" / "checkpoint=base" / "data.parquet")
    problems = pl.read_parquet(tmp_path / "problems" / "data.parquet")
    assert rollouts.height == problems.height  # one sample per problem, from run config
    assert rollouts["temperature"].unique().to_list() == [0.5]
    assert rollouts["max_new_tokens"].unique().to_list() == [7]  # from the environment
    assert rollouts["checkpoint"].unique().to_list() == ["base"]


def test_a_rerun_is_told_from_the_footer_digest_or_else_from_the_rows(tmp_path):
    """Files written before the footer digest, or by another polars version, are compared row by row."""
    from compute import lake
    from orchestration.wiring.io_manager import LakeIOManager

    url, frame = str(tmp_path), pl.DataFrame({"x": [1, 2, 3]})
    manager, context = LakeIOManager(lake_url=url), dg.build_output_context(asset_key=dg.AssetKey("t"))
    said = lambda rows: manager._rerun(context, "t", "", rows, lake.rows_digest(rows))  # noqa: E731
    assert said(frame) == "first write of this partition"
    for stored in (None, "polars 0.0.1 " + "0" * 64, lake.rows_digest(frame)):
        lake.write_partition(url, "t", "", frame.with_columns(code_version=pl.lit("1")), stored)
        assert said(frame).startswith("unchanged"), stored
        assert said(frame.head(2)).startswith("changed"), stored


def test_the_code_location_loads_without_torch_or_transformers():
    """Every Dagster process imports the code location (the code server, each run, the daemon's); only the steps
    that run a model need torch and transformers, which alone took about 8 of its 10 s to import on 2 cores."""
    code = ("import sys, orchestration.definitions; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
