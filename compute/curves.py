"""Training curves to compare (AB_CURVES_URL): evaluation results of training runs, one row per run arm, seed,
step and problem, as an A/B of a training change writes them (`compute.toyworld.ab`, or a trainer's eval logs):

    arm         the run's variant, e.g. grpo | grpo_weighted (the A/B compares each arm with the reference arm,
                sql/macros.sql: ab_reference_arm())
    seed        the run's seed (arms with the same seed are paired)
    step        the training step evaluated (0: before training)
    dataset     optional (default: the file's name up to its first dot)
    problem_id  the problem evaluated
    n, correct  responses sampled for it and how many were right

Every arm and step covers the same seeds and problems (the comparison pairs them). A .parquet, .jsonl or .csv
file, local or on S3. A file that does not fit raises one error naming the file, what
is wrong and the fix.
"""

from __future__ import annotations

import polars as pl

from compute.listing import fresh

COLUMNS = {"arm": pl.String, "seed": pl.Int32, "step": pl.Int32, "dataset": pl.String, "problem_id": pl.String,
           "n": pl.Int32, "correct": pl.Int32}
FIX = ("write one row per arm, seed, step and problem with columns arm, seed, step, problem_id, n, correct "
       "(dataset optional), as compute/toyworld/ab.py does")


def load_curves(url: str) -> pl.DataFrame:
    fs, path = fresh(url)
    name = url.rstrip("/").rsplit("/", 1)[-1]
    kind = name.lower().rsplit(".", 1)[-1]
    readers = {"parquet": pl.read_parquet, "jsonl": pl.read_ndjson, "csv": pl.read_csv}
    if kind not in readers:
        raise ValueError(f"AB_CURVES_URL={url}: a .parquet, .jsonl or .csv file is expected; {FIX}")
    if not fs.exists(path):
        raise FileNotFoundError(f"AB_CURVES_URL={url} does not exist; point it at the A/B's curves file or unset it")
    try:
        with fs.open(path, "rb") as fh:
            frame = readers[kind](fh)
    except Exception as e:  # polars raises several kinds of error for a file it cannot read
        raise ValueError(f"AB_CURVES_URL={url} cannot be read as {kind} ({type(e).__name__}: {e}); {FIX}") from None
    if "dataset" not in frame.columns:
        frame = frame.with_columns(pl.lit(name.split(".", 1)[0]).alias("dataset"))
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"AB_CURVES_URL={url} lacks the columns {', '.join(missing)}; {FIX}")
    try:
        frame = frame.select(pl.col(c).cast(t, strict=True) for c, t in COLUMNS.items())
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"AB_CURVES_URL={url}: a column has values of the wrong kind ({e}); {FIX}") from None
    bad = frame.filter(pl.any_horizontal(pl.all().is_null()) | (pl.col("n") < 1) | (pl.col("correct") < 0)
                       | (pl.col("correct") > pl.col("n")))
    if bad.height:
        raise ValueError(f"AB_CURVES_URL={url}: {bad.height} rows have an empty value or correct outside 0..n, e.g. "
                         f"{bad.row(0, named=True)}; {FIX}")
    keys = frame.select("arm", "seed", "step", "dataset", "problem_id")
    if (repeats := keys.height - keys.unique().height) > 0:
        raise ValueError(f"AB_CURVES_URL={url}: {repeats} rows repeat an arm, seed, step and problem listed before, "
                         f"e.g. {frame.filter(keys.is_duplicated()).row(0, named=True)}; {FIX}")
    grid = frame.select("arm", "step").unique().join(frame.select("seed", "dataset", "problem_id").unique(), how="cross")
    if grid.height > frame.height:  # the A/B pairs arms and steps seed by seed and problem by problem
        gap = grid.join(frame, on=list(grid.columns), how="anti").sort(grid.columns)
        raise ValueError(f"AB_CURVES_URL={url}: every arm and step must cover the same seeds and problems, and "
                         f"{gap.height} combinations are missing, e.g. {gap.row(0, named=True)} (a run still going? "
                         f"compare finished runs only); {FIX}")
    return frame.sort("arm", "seed", "step", "dataset", "problem_id")
