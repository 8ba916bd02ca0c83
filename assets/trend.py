"""The trend across checkpoints: one row per checkpoint, by role and step, from every partition's summaries."""

import dagster as dg
import polars as pl

from compute.lakesql import compute_table
from compute.summaries import markdown_table
from orchestration.wiring import names
from orchestration.wiring.conditions import EAGER

ALLOW_MISSING = (EAGER.without(~dg.AutomationCondition.any_deps_missing())
                 | dg.AutomationCondition.code_version_changed()).with_label(
    "eager on data changes, also with checkpoints pending")


@dg.asset(code_version="5", group_name=names.TREND, kinds={"duckdb"}, automation_condition=ALLOW_MISSING)
def trend(context: dg.AssetExecutionContext, checkpoints: pl.DataFrame, summaries: pl.DataFrame,
          cross_summaries: pl.DataFrame) -> pl.DataFrame:
    """Accuracy, JS percentiles, near-zero-JS share and cross-sampling recovery per checkpoint step;
    checkpoints not analysed yet are left out (sql/tables/trend.sql, run by DuckDB). Refreshed whenever a
    checkpoint's summaries change; its figure is drawn by the `report` asset."""
    frame = compute_table("trend", {"checkpoints": checkpoints, "summaries": summaries,
                                    "cross_summaries": cross_summaries})
    context.add_output_metadata({"trend": dg.MetadataValue.md(markdown_table(frame, [
        "role", "step", "rl_accuracy", "rl_accuracy_lo", "rl_accuracy_hi", "js_p50", "js_p90", "js_p99", "share_js_lt_1e3",
        "forward_js_gap_moved"]))})
    return frame
