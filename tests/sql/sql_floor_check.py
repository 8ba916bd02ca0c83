"""Every aggregate table and named query over a lake, runnable with duckdb, polars and pyarrow alone.

`python tests/sql/sql_floor_check.py LAKE OUT` computes the three aggregate tables (sql/tables) from the
lake's own inputs and runs every named query (sql/queries) over the lake, writing each result to
OUT/<name>.parquet. The floor test runs it in a venv holding the lowest duckdb, polars and pyarrow that
pyproject.toml accepts and compares with the same script under the project's venv: a SQL feature the floor
lacks, or a result it computes otherwise, fails there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import polars as pl  # noqa: E402

from compute import lake, lakesql  # noqa: E402


def _table(url: str, name: str, partitions: list[str] | None = None) -> pl.DataFrame:
    parts = partitions if partitions is not None else lake.list_partitions(url, name)
    return pl.concat([lake.read_partition(url, name, p) for p in parts], how="diagonal_relaxed").drop(
        "code_version", strict=False)


def main(url: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    base_scores = _table(url, "scores", [lake.BASE_PARTITION])
    keys = [p.split("=", 1)[1] for p in lake.list_partitions(url, "cross_summaries")]
    for key in keys:
        part = [lake.checkpoint_partition(key)]
        scores = _table(url, "scores", part)
        lakesql.compute_table("summaries", {"token_shifts": _table(url, "token_shifts", part),
                                            "scores": pl.concat([base_scores, scores])},
                              checkpoint=key).write_parquet(out / f"summaries-{key}.parquet")
        lakesql.compute_table("cross_summaries", {"cross_samples": _table(url, "cross_samples", part),
                                                  "cross_scores": _table(url, "cross_scores", part),
                                                  "base_scores": base_scores, "scores": scores},
                              checkpoint=key).write_parquet(out / f"cross_summaries-{key}.parquet")
    lakesql.compute_table("trend", {"checkpoints": _table(url, "checkpoints"), "summaries": _table(url, "summaries"),
                                    "cross_summaries": _table(url, "cross_summaries")}).write_parquet(out / "trend.parquet")
    for name in lakesql.list_queries():
        lakesql.run(lakesql.query_text(name), url).write_parquet(out / f"query-{name}.parquet")
    import duckdb

    print(f"duckdb {duckdb.__version__} polars {pl.__version__}: {len(list(out.glob('*.parquet')))} results")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
