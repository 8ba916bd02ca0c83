"""Uncertainty: every accuracy, gap_moved and switched share carries a 95% percentile-bootstrap interval over
problems, and comparisons resample the same problems on both sides. The draws are recomputed here in Python
from their definition in sql/macros.sql (lowbias32 of the resample and the slot, xor the seed's hash)."""

import numpy as np
import polars as pl
import pytest

from compute import lake as lakeio
from compute import lakesql

M32 = 2**32


def _hash32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x7FEB352D) % M32
    x ^= x >> 15
    x = (x * 0x846CA68B) % M32
    return x ^ (x >> 16)


def _draws(n: int) -> np.ndarray:
    """[resample, slot] -> index of the problem drawn (problems ordered by dataset, problem_id)."""
    resamples, seed = lakesql.constant("bootstrap_resamples()"), lakesql.constant("bootstrap_seed()")
    salt = _hash32(seed)
    return np.array([[_hash32(((b << 20) + i) % M32 ^ salt) % n for i in range(n)] for b in range(resamples)])


def _per_problem(frame: pl.DataFrame, problems: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(correct, samples) per problem, in the order of `problems`."""
    counts = frame.group_by("dataset", "problem_id").agg(pl.col("correct").sum().alias("k"), pl.len().alias("n"))
    by = {(r["dataset"], r["problem_id"]): (r["k"], r["n"]) for r in counts.iter_rows(named=True)}
    k, n = zip(*(by.get(p, (0, 0)) for p in problems))
    return np.array(k, dtype=float), np.array(n, dtype=float)


def _replicates(k: np.ndarray, n: np.ndarray, draws: np.ndarray) -> np.ndarray:
    return k[draws].sum(axis=1) / n[draws].sum(axis=1)


def _interval(replicates) -> tuple[float, float]:
    level = float(lakesql.constant("interval_level()"))
    return tuple(np.nanquantile(np.asarray(replicates, dtype=float), [(1 - level) / 2, (1 + level) / 2]))  # nulls: no gap


def _inputs(url: str, key: str):
    base = lakeio.read_partition(url, "scores", "checkpoint=base")
    rl = lakeio.read_partition(url, "scores", f"checkpoint={key}")
    problems = sorted(set(zip(base["dataset"], base["problem_id"])) | set(zip(rl["dataset"], rl["problem_id"])))
    return base, rl, problems, _draws(len(problems))


def test_accuracy_intervals_resample_problems_the_same_way_for_both_policies(lake):
    url, keys = lake
    for key in keys:
        base, rl, problems, draws = _inputs(url, key)
        summary = lakeio.read_partition(url, "summaries", f"checkpoint={key}").sort("policy")
        for policy, scores in (("base", base), ("rl", rl)):
            row = summary.filter(pl.col("policy") == policy).row(0, named=True)
            expected = _replicates(*_per_problem(scores, problems), draws)
            assert row["accuracy_replicates"] == pytest.approx(expected.tolist(), abs=1e-6)
            assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx(_interval(row["accuracy_replicates"]), abs=1e-6)
            assert row["accuracy_lo"] <= row["accuracy"] <= row["accuracy_hi"]
            assert (row["bootstrap_unit"], row["bootstrap_resamples"], row["n_problems"]) == (
                "problem", len(expected), len(problems))


def test_gap_moved_intervals_score_rule_base_and_rl_on_the_same_resampled_problems(lake):
    url, keys = lake
    key = keys[-1]
    base, rl, problems, draws = _inputs(url, key)
    samples = lakeio.read_partition(url, "cross_samples", f"checkpoint={key}").join(
        lakeio.read_partition(url, "cross_scores", f"checkpoint={key}").select("cross_sample_id", "correct"),
        on="cross_sample_id")
    base_b, rl_b = (_replicates(*_per_problem(s, problems), draws) for s in (base, rl))
    summary = lakeio.read_partition(url, "cross_summaries", f"checkpoint={key}")
    checked = 0
    for row in summary.filter(pl.col("eps").is_finite()).iter_rows(named=True):
        rule = samples.filter((pl.col("direction") == row["direction"]) & (pl.col("criterion") == row["criterion"])
                              & (pl.col("eps") == row["eps"]))
        accuracy = _replicates(*_per_problem(rule, problems), draws)
        assert row["accuracy_replicates"] == pytest.approx(accuracy.tolist(), abs=1e-6)
        if row["gap_moved"] is None:
            continue
        moved = accuracy - base_b if row["direction"] == "forward" else rl_b - accuracy
        expected = moved / (rl_b - base_b)
        finite = np.isfinite(expected)
        assert np.array(row["gap_moved_replicates"], dtype=float)[finite] == pytest.approx(expected[finite], abs=1e-5)
        assert (row["gap_moved_lo"], row["gap_moved_hi"]) == pytest.approx(_interval(row["gap_moved_replicates"]), abs=1e-6)
        checked += 1
    assert checked >= 10


def test_paired_differences_between_checkpoints_and_between_rules(lake):
    url, keys = lake
    trend = lakesql.run(lakesql.query_text("checkpoint_trend"), url)
    summaries = {k: lakeio.read_partition(url, "summaries", f"checkpoint={k}").filter(pl.col("policy") == "rl").row(
        0, named=True) for k in keys}
    first, second = (summaries[k] for k in keys)
    assert first["problem_set"] == second["problem_set"]
    difference = np.array(second["accuracy_replicates"], dtype=float) - np.array(first["accuracy_replicates"], dtype=float)
    row = trend.filter(pl.col("checkpoint") == keys[1]).row(0, named=True)
    assert (row["rl_accuracy_change_lo"], row["rl_accuracy_change_hi"]) == pytest.approx(_interval(difference), abs=1e-6)
    assert row["rl_accuracy_change"] == pytest.approx(second["accuracy"] - first["accuracy"], abs=1e-6)
    assert trend.filter(pl.col("checkpoint") == keys[0])["rl_accuracy_change"].is_null().all()  # nothing before it
    # js against random at the same budget: the difference of their replicates, problem by problem
    budget = lakesql.run(lakesql.query_text("cross_sampling_budget"), url)
    cross = pl.concat([lakeio.read_partition(url, "cross_summaries", f"checkpoint={k}") for k in keys])
    picks = budget.filter(pl.col("random_gap_moved").is_not_null())
    assert picks.height  # the small world's checkpoints move the gap: the comparison below is not vacuous
    for pick in picks.iter_rows(named=True):
        rules = {r["criterion"]: np.array(r["gap_moved_report_replicates"], dtype=float) for r in cross.filter(
            (pl.col("checkpoint") == pick["checkpoint"]) & (pl.col("direction") == pick["direction"])
            & (pl.col("eps") == pick["eps"]) & pl.col("criterion").is_in(["js", "random"])).iter_rows(named=True)}
        expected = _interval(rules["js"] - rules["random"])
        assert (pick["js_minus_random_lo"], pick["js_minus_random_hi"]) == pytest.approx(expected, abs=1e-6)
