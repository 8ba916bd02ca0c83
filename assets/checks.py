"""The data-quality checks every checked table carries (compute.quality: a GX suite and SQL invariants),
declared on its assets as blocking asset checks: a failing check stops what reads the table in the run."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from compute.quality import INVARIANTS, SUITE, check_table


def specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(SUITE, asset=asset, blocking=True,
                              description="Great Expectations suite of the table (bounded sample)"),
            dg.AssetCheckSpec(INVARIANTS, asset=asset, blocking=True,
                              description="Row- and table-spanning invariants in DuckDB SQL (whole table)")]


def output_and_checks(table: str, frame: pl.DataFrame, related: dict[str, pl.DataFrame] | None = None,
                      vocab: int | None = None) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The asset's output, then its checks' results with what they validated as metadata."""
    yield dg.Output(frame)
    for result in check_table(table, frame, related, vocab):
        yield dg.AssetCheckResult(check_name=result.check, passed=result.passed, metadata={
            **result.metadata, "failures": "\n".join(result.failures) or "none"})
