"""Responses that are empty or hit max_new_tokens, and a lake written by an older code version."""

import dagster as dg
import polars as pl

from compute import lake as lakeio
from compute import lakesql
from compute.quality import METRICS, check_table, invariants
from tests.conftest import materialise_all, study_settings


def test_responses_cut_at_max_new_tokens_are_kept_marked_and_measured(small_world, tmp_path):
    """With 3 new tokens no response reaches EOS: every rollout is `length`, its tokens all measured."""
    settings = study_settings(small_world, tmp_path / "lake", max_new_tokens=3, cross_eps_js="0.1")
    with dg.DagsterInstance.ephemeral() as instance:
        keys = materialise_all(settings, instance)
    rollouts = lakeio.read_partition(settings.lake_url, "rollouts", f"checkpoint={keys[0]}")
    assert set(rollouts["finish_reason"]) == {"length"} and set(rollouts["n_tokens"]) == {3}
    shifts = lakeio.read_partition(settings.lake_url, "token_shifts", f"checkpoint={keys[0]}")
    assert shifts.height == 3 * (rollouts.height * 2)  # base and RL rollouts, 3 tokens each
    scores = lakeio.read_partition(settings.lake_url, "scores", f"checkpoint={keys[0]}")
    assert set(scores["reason"]) == {"no_answer"} and not scores["correct"].any()


def test_an_empty_response_gives_no_token_rows_and_passes_the_checks():
    rollouts = pl.DataFrame({"rollout_id": ["r0", "r1"], "response_text": ["", "12$"], "n_tokens": [0, 3],
                             "max_new_tokens": [8, 8], "response_ids": [[], [4, 5, 3]], "finish_reason": ["eos", "eos"]},
                            schema_overrides={"response_ids": pl.List(pl.Int32)})
    shifts = pl.DataFrame({"rollout_id": ["r1"] * 3, "position": [0, 1, 2], **{m: [0.0] * 3 for m in METRICS}})
    assert all(r.passed for r in check_table("rollouts", rollouts))
    assert invariants("token_shifts", shifts, {"rollouts": rollouts}).passed  # 0 + 3 tokens, 3 rows
    assert not invariants("token_shifts", shifts.head(2), {"rollouts": rollouts}).passed


def test_a_lake_from_an_older_code_version_stays_readable(lake, tmp_path):
    """A partition written before a column existed (here: scores without `reason`, as code version 1 wrote
    them) is read next to new ones: the views fill the column with nulls."""
    url, keys = lake
    if "://" in url:
        return  # the local run covers the rewrite; the S3 run reads the same views
    old = str(tmp_path / "old")
    import shutil

    shutil.copytree(url, old)
    lakeio.write_partition(old, "scores", "checkpoint=base",
                           lakeio.read_partition(old, "scores", "checkpoint=base").drop("reason")
                           .with_columns(pl.lit("1").alias("code_version")))
    frame = lakesql.run("SELECT checkpoint, count(*) AS n, count(reason) AS with_reason FROM scores GROUP BY ALL "
                        "ORDER BY checkpoint", old)
    base = frame.filter(pl.col("checkpoint") == "base").row(0, named=True)
    assert base["n"] > 0 and base["with_reason"] == 0
    assert lakesql.run(lakesql.query_text("accuracy_by_checkpoint"), old).height == 1 + len(keys)
