"""Every asset materialised by real Dagster runs into a temporary lake, then read back from Parquet."""

import polars as pl
import pytest

from compute import lake as lakeio
from compute import lakesql


def _table(url: str, name: str) -> pl.DataFrame:
    return pl.concat([lakeio.read_partition(url, name, p) for p in lakeio.list_partitions(url, name)],
                     how="diagonal_relaxed")


def test_every_table_has_the_base_once_and_every_checkpoint(lake):
    url, keys = lake
    assert keys == ["rl-step-000002", "rl-step-000004"]
    expect = ["checkpoint=base"] + [f"checkpoint={k}" for k in keys]
    for table in ("checkpoints", "rollouts", "scores"):
        assert lakeio.list_partitions(url, table) == expect, table
    for table in ("token_shifts", "summaries", "cross_samples", "cross_scores", "cross_summaries"):
        assert lakeio.list_partitions(url, table) == expect[1:], table
    ckpts = _table(url, "checkpoints").sort("checkpoint")
    assert ckpts["role"].to_list() == ["base", "rl", "rl"] and ckpts["step"].to_list() == [None, 2, 4]
    assert ckpts["tokenizer_hash"].n_unique() == 1 and ckpts["content_hash"].n_unique() == 3
    assert set(_table(url, "rollouts")["code_version"]) == {"2"}


def test_rollouts_are_complete_and_typed(lake):
    url, keys = lake
    problems = lakeio.read_partition(url, "problems", "")
    rollouts = _table(url, "rollouts")
    assert rollouts.height == problems.height * 2 * (1 + len(keys))  # 2 samples per problem and policy
    assert rollouts["rollout_id"].n_unique() == rollouts.height
    assert rollouts.schema["response_ids"] == pl.List(pl.Int32)
    assert (rollouts["response_ids"].list.len() == rollouts["n_tokens"]).all()
    assert set(rollouts["finish_reason"]) <= {"eos", "length"}
    assert (rollouts["n_tokens"] <= rollouts["max_new_tokens"]).all()
    # base and RL rollouts of the same problem and sample share their seed (common random numbers)
    seeds = rollouts.group_by("problem_id", "sample_idx").agg(pl.col("seed").n_unique())
    assert (seeds["seed"] == 1).all()


def test_token_shifts_cover_every_response_token_of_both_policies(lake):
    url, keys = lake
    base_rollouts = lakeio.read_partition(url, "rollouts", "checkpoint=base")
    for key in keys:
        shifts = lakeio.read_partition(url, "token_shifts", f"checkpoint={key}")
        rl_rollouts = lakeio.read_partition(url, "rollouts", f"checkpoint={key}")
        assert shifts.height == base_rollouts["n_tokens"].sum() + rl_rollouts["n_tokens"].sum()
        assert set(shifts["policy"]) == {"base", "rl"}
        assert shifts.schema["js"] == pl.Float32 and shifts.schema["rank_base"] == pl.Int32
        assert shifts.schema["top5_ids_rl"] == pl.List(pl.Int32)
        assert shifts["js"].is_between(0, 0.6932).all() and (shifts["logp_base"] <= 0).all()
        # the token ids are exactly the rollouts' response ids, in order
        joined = shifts.group_by("rollout_id").agg(pl.col("token_id").sort_by("position"))
        ids = pl.concat([base_rollouts, rl_rollouts]).select("rollout_id", "response_ids")
        both = joined.join(ids, on="rollout_id")
        assert both.height == joined.height
        assert (both["token_id"] == both["response_ids"]).all()


def test_scores_and_summaries_agree(lake):
    url, keys = lake
    base_scores = lakeio.read_partition(url, "scores", "checkpoint=base")
    for key in keys:
        scores = lakeio.read_partition(url, "scores", f"checkpoint={key}")
        rollouts = lakeio.read_partition(url, "rollouts", f"checkpoint={key}")
        assert sorted(scores["rollout_id"]) == sorted(rollouts["rollout_id"])
        assert set(scores["verifier"]) == {"toy_addition"} and set(scores["verifier_version"]) == {"1"}
        assert set(scores["reason"]) <= {"correct", "wrong", "no_answer"}
        assert (scores["correct"] == (scores["reason"] == "correct")).all()
        summary = lakeio.read_partition(url, "summaries", f"checkpoint={key}").sort("policy")
        assert summary["policy"].to_list() == ["base", "rl"]
        assert summary["accuracy"].to_list() == pytest.approx([base_scores["correct"].mean(), scores["correct"].mean()])
        shifts = lakeio.read_partition(url, "token_shifts", f"checkpoint={key}")
        rl = shifts.filter(pl.col("policy") == "rl")
        row = summary.filter(pl.col("policy") == "rl").row(0, named=True)
        assert row["n_tokens"] == rl.height
        assert row["share_js_lt_1e3"] == pytest.approx((rl["js"] < 1e-3).mean())
        bins = lakesql.constant("position_bins()")
        assert len(row["position_mean_js"]) == bins
        # the top-5% cut is this policy's own (it was pooled over both policies here and per policy in figure 2)
        cut = row["js_top5pct_cut"]
        assert (rl["js"] >= cut).mean() >= 0.05 > (rl["js"] > cut).mean()
        rel_bin = (rl["rel_position"] * bins).floor().clip(0, bins - 1).cast(pl.Int32)
        top = rl.with_columns(rel_bin.alias("bin")).filter(pl.col("js") >= cut)
        expected = [top.filter(pl.col("bin") == b).height / top.height for b in range(bins)]
        assert row["position_top5pct_share"] == pytest.approx(expected, abs=1e-6)
        figure = lakesql.run(lakesql.query_text("position_profile"), url).filter(
            (pl.col("checkpoint") == key) & (pl.col("policy") == "rl"))
        assert figure["share_of_top5pct"].to_list() == row["position_top5pct_share"]  # the figure reads the table
        assert abs(sum(row["entropy_bucket_share"]) - 1) < 1e-5
