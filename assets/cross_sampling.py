"""Cross-sampling: base and RL decode in lockstep and a switch rule picks whose token comes next; the
verdicts on those responses, and accuracy against the share of switched tokens per rule."""

import dagster as dg
import polars as pl

from assets import checks
from assets.scores import verdicts
from compute import tables
from compute.modelstore import model_of
from compute.lakesql import compute_table
from compute.summaries import markdown_table
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource

HEADLINE = ["direction", "criterion", "eps", "switched_share", "accuracy", "accuracy_lo", "accuracy_hi", "gap_moved",
            "gap_moved_lo", "gap_moved_hi"]


IDENTITY = "never_switch_reproduces_rollouts"


@dg.asset(code_version="3", group_name=names.ANALYSIS, kinds={"pytorch"}, partitions_def=checkpoints_partitions,
          check_specs=[*checks.specs("cross_samples"), dg.AssetCheckSpec(
              IDENTITY, asset="cross_samples",
              description=f"on the first {tables.IDENTITY_PROBLEMS} problems, a js rule that never switches "
                          "(eps = +inf) reproduces the base's rollouts (forward) and the checkpoint's (reverse)")])
def cross_samples(context: dg.AssetExecutionContext, study: StudyResource, problems: pl.DataFrame,
                  base_model: pl.DataFrame, checkpoints: pl.DataFrame, base_rollouts: pl.DataFrame,
                  rollouts: pl.DataFrame):
    """Forward (base primary) and reverse (RL primary) lockstep responses for every criterion and eps,
    plus the random control at each js run's budget (prompts, stops and data version as the rollouts')."""
    cfg = study.settings()
    prompting = cfg.prompts()
    workers = study.workers(context)
    base, rl = workers.model(model_of(base_model)), workers.model(model_of(checkpoints))
    args = (cfg.samples_per_problem, cfg.sampling(), cfg.seed, cfg.cross_batch_size, prompting, workers.pool)
    frame = tables.cross_samples(base, rl, problems, context.partition_key, cfg.cross_grid(), *args)
    context.add_asset_metadata({**prompting.metadata(base.tokenizer), **workers.metadata()})
    context.set_data_version(context.asset_key, dg.DataVersion(tables.content_version(frame)))
    yield from checks.output_and_checks("cross_samples", frame)
    # the rollouts are read for the check (and are the same settings' samples: what changes them changes these)
    passed, metadata = tables.never_switch_identity(base, rl, problems, context.partition_key, base_rollouts, rollouts,
                                                    cfg.cross_grid(), *args)
    yield dg.AssetCheckResult(check_name=IDENTITY, passed=passed, metadata=metadata)


@dg.asset(code_version="2", group_name=names.ANALYSIS, kinds={"polars"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("cross_scores"))
def cross_scores(study: StudyResource, problems: pl.DataFrame, cross_samples: pl.DataFrame):
    """Verdicts on every cross sample, by the same verifiers as the rollouts' scores."""
    yield from checks.output_and_checks("cross_scores", verdicts(study, cross_samples, problems, tables.CROSS_KEYS),
                                        {"cross_samples": cross_samples})


@dg.asset(code_version="6", group_name=names.ANALYSIS, kinds={"duckdb"}, partitions_def=checkpoints_partitions)
def cross_summaries(context: dg.AssetExecutionContext, cross_samples: pl.DataFrame, cross_scores: pl.DataFrame,
                    base_scores: pl.DataFrame, scores: pl.DataFrame) -> pl.DataFrame:
    """Accuracy and switched-token share per direction, criterion and eps, beside base-only and RL-only
    (sql/tables/cross_summaries.sql, run by DuckDB over this checkpoint's frames)."""
    if "coin" not in cross_samples.columns:  # partitions written before the control had several coin seeds
        cross_samples = cross_samples.with_columns(coin=pl.lit(0, pl.Int32))
    frame = compute_table("cross_summaries", {"cross_samples": cross_samples, "cross_scores": cross_scores,
                                              "base_scores": base_scores, "scores": scores},
                          checkpoint=context.partition_key)
    js = frame.filter(pl.col("criterion").is_in(["js", "random"]))
    context.add_output_metadata({
        "base_accuracy": float(frame["base_accuracy"][0]), "rl_accuracy": float(frame["rl_accuracy"][0]),
        "js_and_random": dg.MetadataValue.md(markdown_table(js, HEADLINE)),
    })
    return frame
