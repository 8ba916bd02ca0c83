"""The findings query: the paper's findings 1-6 as numbers per checkpoint. The token measures, their
bootstrap intervals (sql/macros.sql's draws, the same problems for every checkpoint) and the paired change
are recomputed here from the raw tables (token_shifts joined to the rollouts, summaries' top-5% cut); the
accuracy and cross-sampling lines must be summaries' and cross_sampling_budget's, which their own tests
recompute from the raw verdicts (test_intervals.py, test_held_out.py)."""

import numpy as np
import polars as pl
import pytest

from compute import lake as lakeio
from compute import lakesql
from tests.sql.test_intervals import _draws, _interval, _replicates


def _rl_tokens(url: str, key: str) -> pl.DataFrame:
    shifts = lakeio.read_partition(url, "token_shifts", f"checkpoint={key}").filter(pl.col("policy") == "rl")
    rollouts = lakeio.read_partition(url, "rollouts", f"checkpoint={key}").select("rollout_id", "dataset", "problem_id")
    return shifts.join(rollouts, on="rollout_id")


def _share(tokens: pl.DataFrame, problems: list[tuple[str, str]], draws: np.ndarray, num: pl.Expr, den: pl.Expr):
    """sum(num) / sum(den) over all problems, and its replicates over the resampled problems."""
    per = tokens.group_by("dataset", "problem_id").agg(num.sum().alias("num"), den.sum().alias("den"))
    by = {(r["dataset"], r["problem_id"]): (r["num"], r["den"]) for r in per.iter_rows(named=True)}
    n, d = (np.array(v, dtype=float) for v in zip(*(by.get(p, (0, 0)) for p in problems)))
    with np.errstate(invalid="ignore"):
        return n.sum() / d.sum(), _replicates(n, d, draws)


def test_findings_recompute_from_the_raw_tables(lake):
    url, keys = lake
    findings = lakesql.run(lakesql.query_text("findings"), url)
    budget = lakesql.run(lakesql.query_text("cross_sampling_budget"), url)
    assert findings["checkpoint"].unique(maintain_order=True).to_list() == keys
    assert set(findings["finding"]) == {0, 1, 2, 3, 4, 5, 6}
    first_replicates = None
    for key in keys:
        got = {r["measure"]: r for r in findings.filter(pl.col("checkpoint") == key).iter_rows(named=True)}
        tokens = _rl_tokens(url, key)
        scores = lakeio.read_partition(url, "scores", f"checkpoint={key}")
        problems = sorted(set(zip(scores["dataset"], scores["problem_id"])))
        draws = _draws(len(problems))
        cut = lakeio.read_partition(url, "summaries", f"checkpoint={key}").filter(
            pl.col("policy") == "rl")["js_top5pct_cut"][0]
        js, top, high, near = pl.col("js"), pl.col("js") >= cut, pl.col("js") > 0.1, pl.col("js") < 1e-3
        low_entropy = pl.col("entropy_base") < 0.1
        expect = {  # the labels carry the macros' values (sql/macros.sql), formatted as %g
            "share of tokens with JS < 0.001": (near, js.is_not_null()),
            "top-5%-JS tokens at the first token": (top & (pl.col("position") == 0), top),
            "top-5%-JS tokens in the first tenth": (top & (pl.col("rel_position") < 0.1), top),
            "top-5%-JS tokens in the last tenth": (top & (pl.col("rel_position") >= 0.9), top),
            "JS > 0.1: RL top-1 in base top-3": (high & (pl.col("rl_top1_rank_in_base") <= 3), high),
            "JS < 0.001: base entropy < 0.1": (near & low_entropy, near),
            "JS > 0.1: base entropy < 0.1": (high & low_entropy, high),
            "share of tokens with JS > 0.1": (high, js.is_not_null()),
        }
        for measure, (num, den) in expect.items():
            value, replicates = _share(tokens, problems, draws, num, den)
            row = got[measure]
            if np.isnan(value):
                assert (row["value"], row["lo"], row["hi"]) == (None, None, None), (key, measure)
                continue
            assert row["value"] == pytest.approx(value, abs=1e-9), (key, measure)
            assert (row["lo"], row["hi"]) == pytest.approx(_interval(replicates), abs=1e-6), (key, measure)
            assert row["lo"] <= row["value"] + 1e-9 and row["value"] <= row["hi"] + 1e-9
            if measure == "share of tokens with JS > 0.1":
                if first_replicates is None:
                    first_value, first_replicates = value, replicates
                    assert "change of share with JS > 0.1 since the first checkpoint" not in got
                else:  # evolution, paired: the same resampled problems at both checkpoints
                    change = got["change of share with JS > 0.1 since the first checkpoint"]
                    assert change["value"] == pytest.approx(value - first_value)
                    assert (change["lo"], change["hi"]) == pytest.approx(
                        _interval(replicates - first_replicates), abs=1e-6)
        summary = lakeio.read_partition(url, "summaries", f"checkpoint={key}")
        accuracy = {r["policy"]: r for r in summary.iter_rows(named=True)}
        for measure, policy in (("base accuracy", "base"), ("RL accuracy", "rl")):
            assert (got[measure]["value"], got[measure]["lo"], got[measure]["hi"]) == pytest.approx(
                (accuracy[policy]["accuracy"], accuracy[policy]["accuracy_lo"], accuracy[policy]["accuracy_hi"]))
        assert got["JS p99"]["value"] == pytest.approx(accuracy["rl"]["js_p99"])
        for line in budget.filter(pl.col("checkpoint") == key).iter_rows(named=True):
            d = line["direction"]
            switched = got[f"{d}: share of tokens switched (js rule, eps {line['eps']:g})"]
            assert (switched["value"], switched["lo"]) == (pytest.approx(line["switched_share"]), None)
            for measure, column in ((f"{d}: gap moved by js", "gap_moved"),
                                    (f"{d}: gap moved by random", "random_gap_moved"),
                                    (f"{d}: js minus random", "js_minus_random")):
                for end, suffix in (("value", ""), ("lo", "_lo"), ("hi", "_hi")):
                    want = line[column + suffix]
                    assert got[measure][end] == (None if want is None else pytest.approx(want)), (key, measure, end)
