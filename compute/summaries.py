"""Per-checkpoint aggregates of token shifts and scores: one row per (checkpoint, policy).

Scalar statistics are columns; the position profile and the entropy buckets are list columns whose
bin edges are fixed here (POSITION_BINS, ENTROPY_EDGES) so every checkpoint's rows line up.
"""

from __future__ import annotations

import polars as pl

PERCENTILES = (50, 80, 90, 95, 99)
POSITION_BINS = 10
ENTROPY_EDGES = (0.01, 0.1, 0.5, 1.0)  # nats; buckets [0, .01), [.01, .1), [.1, .5), [.5, 1), [1, inf)
HIGH_JS = 0.1
TOP_SHARE = 0.05


def _position_profile(shifts: pl.DataFrame, js_top_cut: float) -> pl.DataFrame:
    binned = shifts.with_columns(
        (pl.col("rel_position") * POSITION_BINS).floor().clip(0, POSITION_BINS - 1).cast(pl.Int32).alias("bin"))
    grid = pl.DataFrame({"bin": list(range(POSITION_BINS))}, schema={"bin": pl.Int32})
    per_bin = binned.group_by("policy", "bin").agg(
        pl.col("js").mean().alias("mean_js"), (pl.col("js") >= js_top_cut).sum().alias("n_top"))
    top_total = binned.group_by("policy").agg((pl.col("js") >= js_top_cut).sum().alias("top_total"))
    full = (binned.select("policy").unique().join(grid, how="cross")
            .join(per_bin, on=["policy", "bin"], how="left").join(top_total, on="policy")
            .with_columns(pl.col("mean_js").fill_null(0.0), pl.col("n_top").fill_null(0))
            .sort("policy", "bin"))
    return full.group_by("policy", maintain_order=True).agg(
        pl.col("mean_js").cast(pl.Float32).alias("position_mean_js"),
        (pl.col("n_top") / pl.col("top_total").clip(1)).cast(pl.Float32).alias("position_top5pct_share"))


def _entropy_buckets(shifts: pl.DataFrame) -> pl.DataFrame:
    edges = list(ENTROPY_EDGES)
    bucket = pl.col("entropy_base").cut(edges, labels=[str(i) for i in range(len(edges) + 1)],
                                        left_closed=True).cast(pl.String).cast(pl.Int32)
    per = shifts.with_columns(bucket.alias("bucket")).group_by("policy", "bucket").agg(
        pl.len().alias("n"), pl.col("js").mean().alias("mean_js"), (pl.col("js") < 1e-3).mean().alias("low"))
    grid = pl.DataFrame({"bucket": list(range(len(edges) + 1))}, schema={"bucket": pl.Int32})
    full = (shifts.select("policy").unique().join(grid, how="cross")
            .join(per, on=["policy", "bucket"], how="left")
            .with_columns(pl.col("n").fill_null(0)).sort("policy", "bucket"))
    return full.group_by("policy", maintain_order=True).agg(
        (pl.col("n") / pl.col("n").sum().clip(1)).cast(pl.Float32).alias("entropy_bucket_share"),
        pl.col("mean_js").fill_null(0.0).cast(pl.Float32).alias("entropy_bucket_mean_js"),
        pl.col("low").fill_null(0.0).cast(pl.Float32).alias("entropy_bucket_share_js_lt_1e3"))


def summarise(checkpoint: str, shifts: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Accuracy, JS percentiles and shares, position profile, reranking and entropy buckets per policy.

    `scores` holds the verdicts of the rollouts behind `shifts` (both policies).
    """
    js_top_cut = shifts["js"].quantile(1 - TOP_SHARE, "nearest") if shifts.height else 0.0
    stats = shifts.group_by("policy").agg(
        pl.len().alias("n_tokens"),
        pl.col("rollout_id").n_unique().alias("n_rollouts_with_tokens"),
        *[pl.col("js").quantile(q / 100, "linear").cast(pl.Float32).alias(f"js_p{q}") for q in PERCENTILES],
        pl.col("js").mean().cast(pl.Float32).alias("js_mean"),
        (pl.col("js") < 1e-3).mean().cast(pl.Float32).alias("share_js_lt_1e3"),
        (pl.col("js") < 1e-2).mean().cast(pl.Float32).alias("share_js_lt_1e2"),
        (pl.col("js") > HIGH_JS).mean().cast(pl.Float32).alias("share_js_gt_0_1"),
        (pl.col("js") > HIGH_JS).sum().cast(pl.Int64).alias("n_high_js"),
        (pl.col("rl_top1_rank_in_base").filter(pl.col("js") > HIGH_JS) <= 1).mean().cast(pl.Float32)
        .alias("high_js_rl_top1_in_base_top1"),
        (pl.col("rl_top1_rank_in_base").filter(pl.col("js") > HIGH_JS) <= 3).mean().cast(pl.Float32)
        .alias("high_js_rl_top1_in_base_top3"),
    )
    accuracy = scores.group_by("policy").agg(
        pl.len().cast(pl.Int64).alias("n_rollouts"), pl.col("correct").mean().cast(pl.Float32).alias("accuracy"))
    out = (accuracy.join(stats, on="policy", how="left")
           .join(_position_profile(shifts, js_top_cut), on="policy", how="left")
           .join(_entropy_buckets(shifts), on="policy", how="left"))
    return out.with_columns(pl.lit(checkpoint).alias("checkpoint"),
                            pl.lit(js_top_cut, pl.Float32).alias("js_top5pct_cut")).sort("policy")


def markdown_table(frame: pl.DataFrame, columns: list[str]) -> str:
    """A small Markdown table of `columns` (floats to 4 significant digits) for asset metadata."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = []
    for r in frame.select(columns).iter_rows():
        rows.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return head + "\n".join(rows)


def cross_summarise(checkpoint: str, cross_samples: pl.DataFrame, cross_scores: pl.DataFrame,
                    base_scores: pl.DataFrame, rl_scores: pl.DataFrame) -> pl.DataFrame:
    """One row per (direction, criterion, eps): accuracy and switched-token share of the cross samples,
    beside the accuracy of the base and the RL checkpoint sampling alone.

    `switched_share` is the share of all response tokens drawn from the intervening model (the budget),
    `switched_count` the mean number per response, `switched_share_per_response` the mean of each
    response's own share (higher when short responses switch much).

    `gap_moved` is the share of the RL-minus-base accuracy gap the intervention moves: recovered for
    `forward` (base primary), lost for `reverse` (RL primary); null when the gap is zero.
    """
    base_acc, rl_acc = float(base_scores["correct"].mean()), float(rl_scores["correct"].mean())
    gap = rl_acc - base_acc
    joined = cross_samples.join(cross_scores.select("cross_sample_id", "correct"), on="cross_sample_id", how="left")
    out = joined.group_by("direction", "criterion", "eps").agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("correct").mean().cast(pl.Float64).alias("accuracy"),
        (pl.col("n_switched").sum() / pl.col("n_tokens").sum().clip(1)).alias("switched_share"),
        pl.col("n_switched").mean().alias("switched_count"),
        (pl.col("n_switched") / pl.col("n_tokens").clip(1)).mean().alias("switched_share_per_response"),
        pl.col("n_tokens").mean().alias("mean_tokens"),
        pl.col("switch_prob").first(),
    )
    moved = pl.when(pl.col("direction") == "forward").then(pl.col("accuracy") - base_acc).otherwise(rl_acc - pl.col("accuracy"))
    return out.with_columns(
        pl.lit(checkpoint).alias("checkpoint"), pl.lit(base_acc).alias("base_accuracy"), pl.lit(rl_acc).alias("rl_accuracy"),
        (moved / gap if gap != 0 else pl.lit(None, pl.Float64)).alias("gap_moved"),
    ).sort("direction", "criterion", "eps")


def trend_table(checkpoints: pl.DataFrame, summaries: pl.DataFrame, cross_summaries: pl.DataFrame,
                budget: float = 0.10) -> pl.DataFrame:
    """One row per RL checkpoint, by step: accuracy, JS percentiles and near-zero share of RL tokens, and
    the best share of the RL-base gap a js rule moves with at most `budget` of tokens switched, per direction.
    """
    rl = summaries.filter(pl.col("policy") == "rl").select(
        "checkpoint", pl.col("accuracy").alias("rl_accuracy"), "n_tokens", "js_mean",
        *[f"js_p{q}" for q in PERCENTILES], "share_js_lt_1e3", "share_js_gt_0_1")
    base = summaries.filter(pl.col("policy") == "base").select("checkpoint", pl.col("accuracy").alias("base_accuracy"))
    within = cross_summaries.filter((pl.col("criterion") == "js") & (pl.col("switched_share") <= budget)
                                    & pl.col("eps").is_finite())
    moved = within.group_by("checkpoint").agg(
        *[pl.col("gap_moved").filter(pl.col("direction") == d).max().alias(f"{d}_js_gap_moved")
          for d in ("forward", "reverse")])
    steps = checkpoints.filter(pl.col("role") == "rl").select("checkpoint", "step")
    return (steps.join(base, on="checkpoint").join(rl, on="checkpoint").join(moved, on="checkpoint", how="left")
            .sort("step", "checkpoint", nulls_last=True))
