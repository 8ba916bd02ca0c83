"""Data quality of the lake's tables: per table, a Great Expectations suite (GX Core 1.x, called from
code) and the invariants that span rows or tables, in DuckDB SQL.

GX validates a bounded sample (the first SAMPLE_ROWS rows after a seeded shuffle, or the whole table
when smaller) converted to pandas; the SQL invariants always read the whole table. Each result says
which in its metadata. Used by the assets' blocking checks and by `shiftlake check`; knows nothing
about Dagster.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import duckdb
import polars as pl

from compute.lake import BASE_PARTITION
from compute.prompts import FINISH_REASONS

SAMPLE_ROWS = 200_000
SUITE, INVARIANTS = "gx_suite", "invariants"  # the two checks of every checked table
TOL = 1e-6
METRICS = ["js", "kl_rl_base", "kl_base_rl", "entropy_base", "entropy_rl", "logp_base", "logp_rl", "delta_logp",
           "rank_base", "rank_rl", "rl_top1_rank_in_base"]


def _overlaps() -> list[str]:
    from compute.metrics import OVERLAP_KS  # here: the code location imports this module without loading torch

    return [f"overlap_top{k}" for k in OVERLAP_KS]


@dataclass
class CheckResult:
    check: str  # SUITE or INVARIANTS
    table: str
    passed: bool
    failures: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.table}.{self.check}: " + ("ok" if self.passed else "; ".join(self.failures))


def _expectations(table: str, vocab: int | None) -> list:
    import great_expectations as gx

    e = gx.expectations
    if table == "token_shifts":
        vmax = vocab or 2**31 - 1
        out = [e.ExpectColumnValuesToNotBeNull(column=c) for c in METRICS + _overlaps() + ["position", "token_id"]]
        out += [e.ExpectColumnValuesToBeBetween(column="js", min_value=0, max_value=math.log(2) + TOL),
                e.ExpectColumnValuesToBeBetween(column="kl_rl_base", min_value=-TOL),
                e.ExpectColumnValuesToBeBetween(column="kl_base_rl", min_value=-TOL),
                e.ExpectColumnValuesToBeBetween(column="logp_base", max_value=TOL),
                e.ExpectColumnValuesToBeBetween(column="logp_rl", max_value=TOL)]
        emax = math.log(vocab) + 1e-4 if vocab else None
        out += [e.ExpectColumnValuesToBeBetween(column=c, min_value=-TOL, max_value=emax)
                for c in ("entropy_base", "entropy_rl")]
        out += [e.ExpectColumnValuesToBeBetween(column=c, min_value=1, max_value=vmax)
                for c in ("rank_base", "rank_rl", "rl_top1_rank_in_base")]
        out += [e.ExpectColumnValuesToBeBetween(column=c, min_value=0, max_value=1) for c in _overlaps()]
        return out
    if table == "rollouts":
        return [e.ExpectColumnValuesToBeUnique(column="rollout_id"),
                e.ExpectColumnValuesToNotBeNull(column="response_text"),
                e.ExpectColumnValuesToBeBetween(column="n_tokens", min_value=0),
                e.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=list(FINISH_REASONS))]
    if table in ("scores", "cross_scores"):
        key = "rollout_id" if table == "scores" else "cross_sample_id"
        return [e.ExpectColumnValuesToBeUnique(column=key), e.ExpectColumnValuesToNotBeNull(column="verifier_version"),
                e.ExpectColumnValuesToNotBeNull(column="correct")]
    if table == "cross_samples":
        return [e.ExpectColumnValuesToBeUnique(column="cross_sample_id"),
                e.ExpectColumnValuesToBeInSet(column="direction", value_set=["forward", "reverse"]),
                e.ExpectColumnValuesToBeInSet(column="criterion", value_set=["js", "delta_logp", "entropy", "random"]),
                e.ExpectColumnValuesToBeBetween(column="n_switched", min_value=0),
                e.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=list(FINISH_REASONS))]
    if table == "problems":
        return [e.ExpectColumnValuesToNotBeNull(column="prompt"), e.ExpectColumnValuesToNotBeNull(column="answer"),
                e.ExpectColumnValueLengthsToBeBetween(column="prompt", min_value=1),
                e.ExpectColumnValueLengthsToBeBetween(column="answer", min_value=1),
                e.ExpectCompoundColumnsToBeUnique(column_list=["dataset", "problem_id"])]
    raise KeyError(table)


CHECKED = ("problems", "rollouts", "token_shifts", "scores", "cross_samples", "cross_scores")


def gx_suite(table: str, frame: pl.DataFrame, vocab: int | None = None) -> CheckResult:
    """Validate `frame` against the table's GX suite, on a bounded sample."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    t = time.perf_counter()
    sample = frame if frame.height <= SAMPLE_ROWS else frame.sample(SAMPLE_ROWS, seed=0)
    scalar = sample.select([c for c, d in sample.schema.items() if not isinstance(d, (pl.List, pl.Array))])
    # GX's pandas range checks are vectorised for int64/float64 only (a Python call per value otherwise);
    # widening is exact
    scalar = scalar.with_columns(pl.col(pl.Float32).cast(pl.Float64),
                                 pl.col(pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32).cast(pl.Int64))
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("lake").add_dataframe_asset(table)
             .add_batch_definition_whole_dataframe("partition").get_batch(batch_parameters={"dataframe": scalar.to_pandas()}))
    suite = context.suites.add(gx.ExpectationSuite(name=table, expectations=_expectations(table, vocab)))
    outcome = batch.validate(suite, result_format="BOOLEAN_ONLY")  # half the time of SUMMARY
    if not outcome.success:  # again, with counts and examples for the message
        outcome = batch.validate(suite, result_format="SUMMARY")
    failures = []
    for r in outcome.results:
        if not r.success:
            cfg = r.expectation_config
            what = cfg.kwargs.get("column") or cfg.kwargs.get("column_list")
            shown = r.result.get("partial_unexpected_list", [])[:3]
            failures.append(f"{cfg.type}({what}): {r.result.get('unexpected_count', '?')} rows, e.g. {shown}"
                            if "unexpected_count" in r.result else f"{cfg.type}({what}) failed "
                            f"({r.exception_info.get('exception_message') if r.exception_info else 'see GX result'})")
    scope = ("whole table" if sample.height == frame.height
             else f"bounded sample of {sample.height:,} of {frame.height:,} rows")
    return CheckResult(SUITE, table, outcome.success, failures, {
        "validated_on": f"GX on pandas, {scope}", "expectations": len(outcome.results), "rows": frame.height,
        "seconds": round(time.perf_counter() - t, 3)})


def _violations(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0])


def invariants(table: str, frame: pl.DataFrame, related: dict[str, pl.DataFrame]) -> CheckResult:
    """Row- and table-spanning rules in DuckDB SQL over the whole table (`related`: rollouts and the like)."""
    t = time.perf_counter()
    con = duckdb.connect()
    con.register("t", frame.to_arrow())
    for name, other in related.items():
        con.register(name, other.to_arrow())
    rules: list[tuple[str, str]] = []
    if table == "token_shifts":
        rules += [("positions contiguous from 0 per rollout",
                   "SELECT rollout_id FROM t GROUP BY rollout_id "
                   "HAVING min(position) <> 0 OR max(position) <> count(*) - 1 OR count(DISTINCT position) <> count(*)"),
                  ("NaN in a metric", "SELECT 1 FROM t WHERE " + " OR ".join(f"isnan({c})" for c in METRICS[:8]))]
        if "rollouts" in related:
            rules.append(("row count equals the sum of n_tokens of the rollouts it covers",
                          "SELECT 1 WHERE (SELECT count(*) FROM t) <> (SELECT coalesce(sum(n_tokens), 0) FROM rollouts)"))
    if table == "rollouts":
        rules += [("n_tokens within [0, max_new_tokens]", "SELECT 1 FROM t WHERE n_tokens < 0 OR n_tokens > max_new_tokens"),
                  ("n_tokens equals the response length", "SELECT 1 FROM t WHERE len(response_ids) <> n_tokens")]
    if table in ("rollouts", "cross_samples") and "stop" in frame.columns:  # partitions older than stop strings lack it
        rules.append(("a stop (the EOS id that ended it, or the stop string) exactly when not ended by length",
                      "SELECT 1 FROM t WHERE (finish_reason = 'length') <> (stop IS NULL) OR "
                      "(finish_reason = 'eos' AND stop <> CAST(response_ids[-1] AS VARCHAR))"))
    if table in ("scores", "cross_scores"):
        key, source = ("rollout_id", "rollouts") if table == "scores" else ("cross_sample_id", "cross_samples")
        rules.append(("exactly one score per response",
                      f"SELECT {key} FROM t GROUP BY {key} HAVING count(*) <> 1"))
        if source in related:
            rules += [(f"a response without a score", f"SELECT {key} FROM {source} ANTI JOIN t USING ({key})"),
                      (f"a score without a response", f"SELECT {key} FROM t ANTI JOIN {source} USING ({key})")]
    if table == "cross_samples":
        rules += [("n_switched <= n_tokens", "SELECT 1 FROM t WHERE n_switched > n_tokens"),
                  ("switched positions inside the response",
                   "SELECT 1 FROM t WHERE len(switched_positions) <> n_switched OR "
                   "(n_switched > 0 AND (list_min(switched_positions) < 0 OR list_max(switched_positions) >= n_tokens))")]
    failures = []
    for what, sql in rules:
        if n := _violations(con, sql):
            failures.append(f"{what}: {n} violations")
    return CheckResult(INVARIANTS, table, not failures, failures, {
        "validated_on": "DuckDB SQL, whole table", "rules": len(rules), "rows": frame.height,
        "seconds": round(time.perf_counter() - t, 3)})


def check_table(table: str, frame: pl.DataFrame, related: dict[str, pl.DataFrame] | None = None,
                vocab: int | None = None) -> list[CheckResult]:
    return [gx_suite(table, frame, vocab), invariants(table, frame, related or {})]


def check_lake(lake_url: str, log=lambda *_: None) -> list[tuple[str, CheckResult]]:
    """Every checked table's checks over every partition in the lake: [(partition, result)]."""
    from compute import lake

    written = {t: set(lake.list_partitions(lake_url, t)) for t in ("checkpoints", "rollouts", "cross_samples")}

    def read(table: str, partition: str) -> pl.DataFrame | None:
        return lake.read_partition(lake_url, table, partition) if partition in written[table] else None

    vocab = None
    if written["checkpoints"]:
        rows = pl.concat([lake.read_partition(lake_url, "checkpoints", p) for p in sorted(written["checkpoints"])],
                         how="diagonal_relaxed")
        if "vocab_size" in rows.columns and rows["vocab_size"].null_count() < rows.height:
            vocab = int(rows["vocab_size"].max())
    out = []
    try:
        problems = lake.read_partition(lake_url, "problems", "")
        out += [("", r) for r in check_table("problems", problems)]
    except FileNotFoundError:
        pass
    base_rollouts = read("rollouts", BASE_PARTITION)
    for table in CHECKED[1:]:
        for partition in lake.list_partitions(lake_url, table):
            log(f"checking {table}[{partition}]")
            frame = lake.read_partition(lake_url, table, partition)
            related = {}
            if table == "token_shifts":
                own = read("rollouts", partition)
                related["rollouts"] = pl.concat([f for f in (base_rollouts, own) if f is not None], how="diagonal_relaxed")
            elif table == "scores" and (own := read("rollouts", partition)) is not None:
                related["rollouts"] = own
            elif table == "cross_scores" and (own := read("cross_samples", partition)) is not None:
                related["cross_samples"] = own
            out += [(partition, r) for r in check_table(table, frame.drop("code_version", strict=False), related, vocab)]
    return out
