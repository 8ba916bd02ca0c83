"""The aggregate tables' rows as Markdown for asset metadata. The tables themselves (summaries,
cross_summaries, trend) are SQL: sql/tables/*.sql, run by DuckDB over an asset's frames
(`compute.lakesql.compute_table`), with the constants and buckets of sql/macros.sql."""

from __future__ import annotations

import polars as pl


def markdown_table(frame: pl.DataFrame, columns: list[str]) -> str:
    """A small Markdown table of `columns` (floats to 4 significant digits) for asset metadata."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = []
    for r in frame.select(columns).iter_rows():
        rows.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return head + "\n".join(rows)
