"""The A/B query (sql/queries/advantage_ab.sql) on the small world's curves, recomputed here: accuracy over seeds and
problems, the seeds' range, and intervals whose draws resample seeds and problems together, paired between arms."""

import numpy as np
import polars as pl
import pytest

from compute import lakesql
from tests.sql.test_intervals import M32, _hash32, _interval

pytestmark = pytest.mark.parametrize("lake", ["local"], indirect=True)


def _picks(n: int, slot) -> np.ndarray:
    """[resample, i] -> index drawn at slot(i) of each resample, as bootstrap_pick does."""
    resamples, salt = lakesql.constant("bootstrap_resamples()"), _hash32(lakesql.constant("bootstrap_seed()"))
    return np.array([[_hash32(((b << 20) + slot(i)) % M32 ^ salt) % n for i in range(n)] for b in range(resamples)])


def test_the_ab_query_matches_a_recomputation(lake, small_ab):
    url, _ = lake
    got = lakesql.run(lakesql.query_text("advantage_ab"), url)
    curves = pl.read_parquet(small_ab)
    problems = sorted(set(zip(curves["dataset"], curves["problem_id"])))
    seeds = sorted(set(curves["seed"]))
    problem_draws = _picks(len(problems), lambda i: i)
    seed_draws = _picks(len(seeds), lambda q: 1048575 - q)
    reference = lakesql.constant("ab_reference_arm()")
    assert got["arm"][0] == reference and set(got["arm"]) == set(curves["arm"])
    replicates = {}
    for (arm, step), part in curves.group_by("arm", "step"):
        k = np.zeros((len(seeds), len(problems)))
        n = np.zeros_like(k)
        for row in part.iter_rows(named=True):
            at = seeds.index(row["seed"]), problems.index((row["dataset"], row["problem_id"]))
            k[at], n[at] = row["correct"], row["n"]
        # every pair (drawn seed, drawn problem) of a resample counts once
        reps = np.array([k[np.ix_(s, p)].sum() / n[np.ix_(s, p)].sum() for s, p in zip(seed_draws, problem_draws)])
        replicates[arm, step] = reps
        row = got.filter(arm=arm, step=step).row(0, named=True)
        assert row["accuracy"] == pytest.approx(k.sum() / n.sum())
        assert (row["n_seeds"], row["n_problems"], row["n"]) == (len(seeds), len(problems), n.sum())
        by_seed = k.sum(1) / n.sum(1)
        assert (row["seed_min"], row["seed_max"]) == pytest.approx((by_seed.min(), by_seed.max()))
        assert (row["accuracy_lo"], row["accuracy_hi"]) == pytest.approx(_interval(reps))
    for row in got.iter_rows(named=True):
        ref = replicates[reference, row["step"]]
        assert row["minus_reference"] == pytest.approx(row["accuracy"] - got.filter(
            arm=reference, step=row["step"])["accuracy"][0])
        assert (row["minus_reference_lo"], row["minus_reference_hi"]) == pytest.approx(
            _interval(replicates[row["arm"], row["step"]] - ref))
    # before training both arms are the base, scored with the same seeds: no difference at all
    assert got.filter(step=0)["minus_reference"].to_list() == [0.0, 0.0]
    assert got.filter(step=0)["minus_reference_hi"].to_list() == [0.0, 0.0]
