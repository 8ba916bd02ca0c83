"""Problems: load a jsonl or parquet file of prompt/answer rows into the `problems` table."""

from __future__ import annotations

from pathlib import Path

import polars as pl

COLUMNS = ("dataset", "problem_id", "prompt", "answer")


def load_problems(url: str, max_problems: int = 0) -> pl.DataFrame:
    """Read `url` (.jsonl or .parquet) with at least prompt and answer columns.

    problem_id defaults to the row number, dataset to the file's stem. Raises one clear error for a
    missing file, missing columns, empty prompts/answers, duplicate ids or an empty file.
    """
    path = Path(url)
    if not path.exists():
        raise FileNotFoundError(f"problems file {url} does not exist; set PROBLEMS_URL to a .jsonl or .parquet file")
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    elif path.suffix in (".jsonl", ".json"):
        frame = pl.read_ndjson(path) if path.stat().st_size else pl.DataFrame()
    else:
        raise ValueError(f"problems file {url}: unsupported format {path.suffix!r}; use .jsonl or .parquet")
    missing = [c for c in ("prompt", "answer") if c not in frame.columns]
    if frame.height == 0:
        raise ValueError(f"problems file {url} is empty; it needs rows with prompt and answer")
    if missing:
        raise ValueError(f"problems file {url} lacks column(s) {missing}; it needs 'prompt' and 'answer' "
                         f"(found {frame.columns})")
    if "problem_id" not in frame.columns:
        frame = frame.with_row_index("problem_id").with_columns(pl.col("problem_id").cast(pl.String))
    if "dataset" not in frame.columns:
        frame = frame.with_columns(pl.lit(path.stem.split(".")[0]).alias("dataset"))
    frame = frame.select(*(pl.col(c).cast(pl.String) for c in COLUMNS))
    dupes = frame.filter(pl.struct("dataset", "problem_id").is_duplicated())["problem_id"].unique().to_list()
    if dupes:
        raise ValueError(f"problems file {url} repeats problem_id(s) {sorted(dupes)[:5]}; ids must be unique")
    empty = frame.filter((pl.col("prompt").str.len_chars() == 0) | (pl.col("answer").str.len_chars() == 0))
    if empty.height:
        raise ValueError(f"problems file {url} has {empty.height} row(s) with an empty prompt or answer")
    return frame.head(max_problems) if max_problems else frame
