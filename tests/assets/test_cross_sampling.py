"""The cross-sampling assets on the small world, materialised by real Dagster runs (the `lake` fixture,
whose js grid includes -inf and +inf so the identities can be checked against the stored rollouts)."""

import math

import polars as pl
import pytest

from compute import lake as lakeio
from compute import lakesql

CURVE_COLUMNS = ["checkpoint", "step", "direction", "criterion", "eps", "switched_share", "switched_count",
                 "accuracy", "accuracy_lo", "accuracy_hi", "n", "base_accuracy", "rl_accuracy"]


def _responses(frame: pl.DataFrame) -> dict[tuple, list[int]]:
    return {(r["problem_id"], r["sample_idx"]): r["response_ids"]
            for r in frame.select("problem_id", "sample_idx", "response_ids").iter_rows(named=True)}


def test_extreme_eps_reproduce_the_stored_rollouts(lake):
    """Same seeds as the rollouts: a js rule that never switches reproduces the primary's own rollouts,
    one that always switches the intervening model's, token for token (as does the random control at
    switch probability 0 or 1), although the lockstep batches mix rules and differ from the rollouts'."""
    url, keys = lake
    base = _responses(lakeio.read_partition(url, "rollouts", "checkpoint=base"))
    for key in keys:
        rl = _responses(lakeio.read_partition(url, "rollouts", f"checkpoint={key}"))
        cross = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}")
        for direction, eps, expect in [("forward", math.inf, base), ("reverse", math.inf, rl),
                                       ("forward", -math.inf, rl), ("reverse", -math.inf, base)]:
            for criterion, coin in (("js", 0), ("random", 0), ("random", 1), ("random", 2)):
                rows = cross.filter((pl.col("direction") == direction) & (pl.col("criterion") == criterion)
                                    & (pl.col("eps") == eps) & (pl.col("coin") == coin))
                assert rows.height == len(expect)
                assert _responses(rows) == expect, (key, direction, criterion, coin, eps)
                assert (rows["n_switched"] == (rows["n_tokens"] if eps < 0 else 0)).all()


def test_cross_samples_are_complete_and_consistent(lake):
    url, keys = lake
    problems = lakeio.read_partition(url, "problems", "")
    for key in keys:
        cross = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}")
        rules = cross.select("direction", "criterion", "eps", "coin").unique()
        # 2 directions x (4 js + 4 delta_logp + 3 entropy + 4 random x 3 coin seeds) rules, 2 samples per problem
        assert rules.height == 2 * (11 + 4 * 3) and cross.height == rules.height * problems.height * 2
        assert cross["cross_sample_id"].n_unique() == cross.height
        assert (cross["switched_positions"].list.len() == cross["n_switched"]).all()
        assert (cross["n_switched"] <= cross["n_tokens"]).all()
        assert (cross["switched_positions"].list.max().fill_null(-1) < cross["n_tokens"]).all()
        # each random control switches with its js run's share of switched tokens
        js = (cross.filter(pl.col("criterion") == "js").group_by("direction", "eps")
              .agg((pl.col("n_switched").sum() / pl.col("n_tokens").sum()).alias("share")))
        rnd = (cross.filter(pl.col("criterion") == "random").group_by("direction", "eps")
               .agg(pl.col("switch_prob").unique()))
        both = js.join(rnd, on=["direction", "eps"])
        assert both.height == js.height == 8
        for row in both.iter_rows(named=True):
            assert row["switch_prob"] == [pytest.approx(row["share"])]


def test_cross_scores_judge_every_cross_sample(lake):
    url, keys = lake
    for key in keys:
        cross = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}")
        scores = lakeio.read_partition(url, "cross_scores", f"checkpoint={key}")
        assert sorted(scores["cross_sample_id"]) == sorted(cross["cross_sample_id"])
        assert set(scores["verifier"]) == {"toy_addition"}
        assert (scores["correct"] == (scores["reason"] == "correct")).all()


def test_curve_query_has_the_promised_columns_and_matches_the_summaries(lake):
    url, keys = lake
    curve = lakesql.run(lakesql.query_text("cross_sampling_curve"), url)
    assert curve.columns == CURVE_COLUMNS
    assert curve["checkpoint"].unique(maintain_order=True).to_list() == keys
    assert curve["step"].unique(maintain_order=True).to_list() == [2, 4]
    for col in ("switched_share", "accuracy", "base_accuracy", "rl_accuracy"):
        assert curve[col].is_between(0, 1).all(), col
    base_accuracy = lakeio.read_partition(url, "scores", "checkpoint=base")["correct"].mean()
    for key in keys:
        summary = lakeio.read_partition(url, "cross_summaries", f"checkpoint={key}")
        rl_accuracy = lakeio.read_partition(url, "scores", f"checkpoint={key}")["correct"].mean()
        # recomputed by polars from the raw cross samples and their verdicts
        raw = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}").join(
            lakeio.read_partition(url, "cross_scores", f"checkpoint={key}").select("cross_sample_id", "correct"),
            on="cross_sample_id").group_by("direction", "criterion", "eps").agg(
            (pl.col("n_switched").sum() / pl.col("n_tokens").sum()).alias("switched_share_raw"),
            pl.col("n_switched").mean().alias("switched_count_raw"), pl.col("correct").mean().alias("accuracy_raw"),
            pl.len().alias("n_raw"))
        got = curve.filter(pl.col("checkpoint") == key).join(
            summary, on=["direction", "criterion", "eps"], suffix="_asset").join(raw, on=["direction", "criterion", "eps"])
        assert got.height == summary.height == 30
        for col in ("switched_share", "switched_count", "accuracy", "n"):
            assert got[col].to_list() == pytest.approx(got[f"{col}_raw"].to_list()), col
        for col in ("accuracy_lo", "accuracy_hi", "base_accuracy", "rl_accuracy"):
            assert got[col].to_list() == pytest.approx(got[f"{col}_asset"].to_list()), col
        assert (got["accuracy_lo"] <= got["accuracy"]).all() and (got["accuracy"] <= got["accuracy_hi"]).all()
        assert got["base_accuracy"].to_list() == pytest.approx([base_accuracy] * got.height)
        assert got["rl_accuracy"].to_list() == pytest.approx([rl_accuracy] * got.height)
        # never switching is base-only sampling (forward): accuracy equals the base's, gap moved 0
        never = summary.filter((pl.col("direction") == "forward") & (pl.col("criterion") == "js")
                               & (pl.col("eps") == math.inf)).row(0, named=True)
        assert never["accuracy"] == pytest.approx(base_accuracy) and never["switched_share"] == 0


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_the_never_switch_identity_check_fails_on_rollouts_that_differ(lake, small_world):
    """The asset check behind `never_switch_reproduces_rollouts` (it passed for every checkpoint while the lake
    was built: tests/conftest.py): it decodes its own eps = +inf sample, so it can fail."""
    from compute import tables
    from compute.models import load_model
    from tests.conftest import study_settings

    url, keys = lake
    cfg = study_settings(small_world, url)
    checkpoint = sorted((small_world / "checkpoints").iterdir())[-1]
    base, rl = load_model(small_world / "base"), load_model(checkpoint)
    problems = lakeio.read_partition(url, "problems", "")
    own = {"base": lakeio.read_partition(url, "rollouts", "checkpoint=base"),
           "rl": lakeio.read_partition(url, "rollouts", f"checkpoint={keys[-1]}")}
    args = (cfg.cross_grid(), cfg.samples_per_problem, cfg.sampling(), cfg.seed, cfg.cross_batch_size, cfg.prompts())
    passed, metadata = tables.never_switch_identity(base, rl, problems, keys[-1], own["base"], own["rl"], *args)
    n = tables.IDENTITY_PROBLEMS * cfg.samples_per_problem
    assert passed and metadata["forward: responses identical"] == metadata["reverse: responses identical"] == f"{n} of {n}"
    first = problems.sort("dataset", "problem_id")["problem_id"][0]
    altered = own["rl"].with_columns(pl.when((pl.col("problem_id") == first) & (pl.col("sample_idx") == 0))
                                     .then(pl.col("response_ids").list.reverse()).otherwise(pl.col("response_ids"))
                                     .alias("response_ids"))
    passed, metadata = tables.never_switch_identity(base, rl, problems, keys[-1], own["base"], altered, *args)
    assert not passed and metadata["not identical"] == f"reverse {first}#0"
    assert metadata["reverse: responses identical"] == f"{n - 1} of {n}"


def test_first_switches_are_counted_apart_from_follow_ons(lake):
    """Later switches follow from the first (it changes the rest of the response): per rule, the share of
    responses switched at least once and where the first switch is, recomputed from the raw cross samples."""
    url, keys = lake
    for key in keys:
        raw = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}").group_by(
            "direction", "criterion", "eps").agg(
            (pl.col("n_switched") > 0).mean().alias("once"),
            pl.col("switched_positions").list.min().mean().alias("mean_first"),
            pl.col("switched_positions").list.min().median().alias("median_first"))
        got = lakeio.read_partition(url, "cross_summaries", f"checkpoint={key}").join(
            raw, on=["direction", "criterion", "eps"])
        assert got.height == 30
        assert got["share_switched_at_least_once"].to_list() == pytest.approx(got["once"].to_list())
        for ours, theirs in (("mean_first_switch_position", "mean_first"), ("median_first_switch_position", "median_first")):
            assert got[ours].to_list() == pytest.approx(got[theirs].to_list(), nan_ok=True), ours
        never = got.filter((pl.col("criterion") == "js") & (pl.col("eps") == math.inf))
        assert never["share_switched_at_least_once"].to_list() == [0.0, 0.0]
        assert never["mean_first_switch_position"].is_null().all()
