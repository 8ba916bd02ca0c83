"""Whole tables of a lake, to compare two lakes that ran the same study (rerun, elsewhere, on other releases)."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_series_equal

from compute import lake as lakeio

TABLES = ("problems", "checkpoints", "rollouts", "scores", "token_shifts", "summaries", "cross_samples",
          "cross_scores", "cross_summaries", "advantage_weights", "training_curves", "trend")


def whole_table(url: str, name: str, partitions: list[str] | None = None, ignore=()) -> pl.DataFrame:
    """Every partition of `name` (or those of `partitions` it has), sorted, without the `ignore` columns, a
    wall-clock column and where the lake keeps its copy of each model (under its own URL)."""
    parts = [p for p in lakeio.list_partitions(url, name) if partitions is None or p in partitions] or [""]
    frame = pl.concat([lakeio.read_partition(url, name, p) for p in parts], how="diagonal_relaxed")
    return frame.drop("discovered_at", "model_uri", *ignore, strict=False).sort(pl.all())


def assert_same_frame(label: str, got: pl.DataFrame, want: pl.DataFrame, rel_tol: float = 0.0,
                      abs_tol: float = 0.0) -> None:
    """`got` has `want`'s columns, each equal (exactly, or floats within the tolerances); a failure names
    `label` and the column."""
    assert got.columns == want.columns, (label, got.columns, want.columns)
    for column in want.columns:
        try:
            assert_series_equal(got[column], want[column], check_exact=rel_tol == abs_tol == 0, rel_tol=rel_tol,
                                abs_tol=abs_tol)
        except AssertionError as e:
            raise AssertionError(f"{label}.{column}: {e}") from None


def assert_same_tables(url: str, reference_url: str, tables=TABLES, partitions: list[str] | None = None,
                       ignore=()) -> None:
    """Each table of `url` equals that of `reference_url` exactly (in `partitions` where given; the `ignore`
    columns aside): the same columns and rows, and some rows."""
    for table in tables:
        got = whole_table(url, table, partitions, ignore)
        want = whole_table(reference_url, table, partitions, ignore)
        assert got.height == want.height > 0, (table, got.shape, want.shape)
        assert_same_frame(table, got, want)
