"""The trend across checkpoints: one row per RL checkpoint, by step, from every partition's summaries."""

import dagster as dg
import polars as pl

from assets.report import figure_metadata
from compute import figures
from compute.summaries import markdown_table, trend_table

ALLOW_MISSING = (dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
                 | dg.AutomationCondition.code_version_changed()).with_label("eager, also with checkpoints pending")


@dg.asset(code_version="1", group_name="trend", kinds={"polars"}, automation_condition=ALLOW_MISSING)
def trend(context: dg.AssetExecutionContext, checkpoints: pl.DataFrame, summaries: pl.DataFrame,
          cross_summaries: pl.DataFrame) -> pl.DataFrame:
    """Accuracy, JS percentiles, near-zero-JS share and cross-sampling recovery per checkpoint step;
    checkpoints not analysed yet are left out. Refreshed whenever a checkpoint's summaries change."""
    frame = trend_table(checkpoints, summaries, cross_summaries)
    context.add_output_metadata({"trend": dg.MetadataValue.md(markdown_table(frame, [
        "step", "rl_accuracy", "js_p50", "js_p90", "js_p99", "share_js_lt_1e3", "forward_js_gap_moved"])),
        **figure_metadata([figures.checkpoint_trend(context.resources.io_manager.lake_url, trend=frame)])})
    return frame
