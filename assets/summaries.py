"""Summaries: per checkpoint and policy, the paper's aggregates, also shown as asset metadata."""

import dagster as dg
import polars as pl

from compute.lakesql import compute_table
from compute.summaries import markdown_table
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions

OVERVIEW = ["policy", "accuracy", "accuracy_lo", "accuracy_hi", "n_tokens", "share_js_lt_1e3", "js_p50", "js_p90",
            "js_p99", "high_js_rl_top1_in_base_top3"]


@dg.asset(code_version="3", group_name=names.ANALYSIS, kinds={"duckdb"}, partitions_def=checkpoints_partitions)
def summaries(context: dg.AssetExecutionContext, token_shifts: pl.DataFrame, scores: pl.DataFrame,
              base_scores: pl.DataFrame) -> pl.DataFrame:
    """Accuracy, JS percentiles and shares, position profile, reranking and entropy buckets: DuckDB runs
    sql/tables/summaries.sql over this checkpoint's frames (the figures drawn from them are the `report`
    asset's, from the same columns)."""
    frame = compute_table("summaries", {"token_shifts": token_shifts, "scores": pl.concat([base_scores, scores])},
                          checkpoint=context.partition_key)
    bins = frame["position_mean_js"].list.len().max() or 0
    profile = frame.select("policy", *[pl.col("position_mean_js").list.get(i).alias(f"bin{i}") for i in range(bins)])
    context.add_output_metadata({
        "overview": dg.MetadataValue.md(markdown_table(frame, OVERVIEW)),
        "position_mean_js": dg.MetadataValue.md(markdown_table(profile, profile.columns)),
    })
    return frame
