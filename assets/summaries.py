"""Summaries: per checkpoint and policy, the paper's aggregates, also shown as asset metadata."""

import dagster as dg
import polars as pl

from compute.summaries import markdown_table, summarise
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions

OVERVIEW = ["policy", "accuracy", "n_tokens", "share_js_lt_1e3", "js_p50", "js_p90", "js_p99",
            "high_js_rl_top1_in_base_top3"]


@dg.asset(code_version="1", group_name=names.ANALYSIS, kinds={"polars"}, partitions_def=checkpoints_partitions)
def summaries(context: dg.AssetExecutionContext, token_shifts: pl.DataFrame, scores: pl.DataFrame,
              base_scores: pl.DataFrame) -> pl.DataFrame:
    """Accuracy, JS percentiles and shares, position profile, reranking and entropy buckets (the
    figures drawn from them are the `report` asset's)."""
    frame = summarise(context.partition_key, token_shifts, pl.concat([base_scores, scores]))
    profile = frame.select("policy", *[pl.col("position_mean_js").list.get(i).alias(f"bin{i}") for i in range(10)])
    context.add_output_metadata({
        "overview": dg.MetadataValue.md(markdown_table(frame, OVERVIEW)),
        "position_mean_js": dg.MetadataValue.md(markdown_table(profile, profile.columns)),
    })
    return frame
