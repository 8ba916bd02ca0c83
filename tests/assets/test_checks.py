"""Data-quality checks: every check passes on a real lake (local and S3) and fails, naming the table and
the problem, on deliberately corrupted copies; a failing check blocks what reads the table in a run."""

import shutil

import dagster as dg
import polars as pl
import pytest

from assets import checks
from compute import lake as lakeio
from compute.quality import CHECKED, check_lake
from orchestration.app.cli import main


def test_every_check_passes_on_the_lake(lake, capsys):
    url, keys = lake
    results = check_lake(url)
    assert {r.table for _, r in results} == set(CHECKED)
    assert all(r.passed for _, r in results), [r.describe() for _, r in results if not r.passed]
    assert main(["check", "--lake", url]) == 0
    assert f"{len(results)} of {len(results)} checks passed" in capsys.readouterr().out
    meta = next(r for _, r in results if r.table == "token_shifts").metadata
    assert meta["validated_on"] == "GX on pandas, whole table"  # small: no sampling needed


def _rewrite(url, table, partition, change):
    lakeio.write_partition(url, table, partition, change(lakeio.read_partition(url, table, partition)))


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_corrupted_copies_fail_with_the_table_and_the_problem(lake, tmp_path, capsys):
    url, keys = lake
    bad = str(tmp_path / "corrupted")
    shutil.copytree(url, bad)
    part = f"checkpoint={keys[-1]}"
    nan_first = pl.when(pl.col("position") == 0).then(float("nan")).otherwise(pl.col("js")).alias("js")
    _rewrite(bad, "token_shifts", part, lambda f: f.with_columns(nan_first).filter(pl.col("position") != 1))
    _rewrite(bad, "rollouts", part, lambda f: pl.concat([f, f.head(1)]))
    _rewrite(bad, "scores", "checkpoint=base", lambda f: f.tail(-1))
    _rewrite(bad, "cross_samples", part, lambda f: f.with_columns(n_switched=pl.col("n_tokens") + 1))
    _rewrite(bad, "problems", "", lambda f: f.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(""))
                                                          .otherwise(pl.col("prompt")).alias("prompt")))
    failed = {(r.table, p, r.check): r.failures for p, r in check_lake(bad) if not r.passed}
    expect = {("token_shifts", part, "gx_suite"): "expect_column_values_to_not_be_null(js)",
              ("token_shifts", part, "invariants"): "positions contiguous from 0 per rollout",
              ("rollouts", part, "gx_suite"): "expect_column_values_to_be_unique(rollout_id)",
              ("scores", "checkpoint=base", "invariants"): "a response without a score",
              ("cross_samples", part, "invariants"): "n_switched <= n_tokens",
              ("problems", "", "gx_suite"): "expect_column_value_lengths_to_be_between(prompt)"}
    assert set(failed) >= set(expect)
    for key, text in expect.items():
        assert any(text in f for f in failed[key]), (key, failed[key])
    assert "row count equals the sum of n_tokens" in " ".join(failed[("token_shifts", part, "invariants")])
    assert main(["check", "--lake", bad]) == 1
    out = capsys.readouterr().out
    assert f"FAIL token_shifts[{part}].gx_suite" in out and "FAIL problems.gx_suite" in out


def test_a_failing_check_blocks_the_assets_that_read_the_table():
    @dg.asset(check_specs=checks.specs("bad_rollouts"))
    def bad_rollouts():
        frame = pl.DataFrame({"rollout_id": ["a", "a"], "response_text": ["x", "y"], "n_tokens": [1, 2],
                              "max_new_tokens": [4, 4], "response_ids": [[1], [1, 2]], "finish_reason": ["eos", "eos"]})
        yield from checks.output_and_checks("rollouts", frame)

    @dg.asset
    def reads_them(bad_rollouts: pl.DataFrame) -> int:
        return bad_rollouts.height

    result = dg.materialize([bad_rollouts, reads_them], raise_on_error=False)
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["gx_suite"].passed and evaluations["invariants"].passed
    assert "expect_column_values_to_be_unique(rollout_id)" in evaluations["gx_suite"].metadata["failures"].value
    materialised = {e.event_specific_data.materialization.asset_key.to_user_string()
                    for e in result.get_asset_materialization_events()}
    assert materialised == {"bad_rollouts"}  # stored and flagged; what reads it did not run
