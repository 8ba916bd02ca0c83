"""Sampled responses: the base model's once, each RL checkpoint's per partition."""

import dagster as dg
import polars as pl

from assets import checks
from compute import tables
from compute.lake import BASE_PARTITION
from compute.modelstore import model_of
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource


def _sample(context: dg.AssetExecutionContext, study: StudyResource, uri: str, problems: pl.DataFrame,
            checkpoint: str, policy: str) -> tuple[pl.DataFrame, dict]:
    """The rollouts, and the metadata recording how they were prompted and stopped (`prompt_template` and
    `stop_strings`, which staleness compares with the settings, and `template_hash`)."""
    cfg, workers = study.settings(), study.workers(context)
    loaded, prompting = workers.model(uri), cfg.prompts()
    frame = tables.rollouts(loaded, problems, checkpoint, policy, cfg.samples_per_problem, cfg.sampling(),
                            cfg.seed, cfg.batch_size, prompting, workers.pool)
    return frame, {**prompting.metadata(loaded.tokenizer), **workers.metadata()}


@dg.asset(code_version="2", group_name=names.BASE, kinds={"pytorch"},
          metadata={names.TABLE: "rollouts", names.PARTITION: BASE_PARTITION}, check_specs=checks.specs("base_rollouts"))
def base_rollouts(context: dg.AssetExecutionContext, study: StudyResource, problems: pl.DataFrame,
                  base_model: pl.DataFrame):
    """The base policy's responses, computed once and reused by every checkpoint; the data version is the
    content's, so what reads them is stale once they change (another prompt template, say)."""
    frame, metadata = _sample(context, study, model_of(base_model), problems, "base", "base")
    context.add_asset_metadata(metadata)
    context.set_data_version(context.asset_key, dg.DataVersion(tables.content_version(frame)))
    yield from checks.output_and_checks("rollouts", frame)


@dg.asset(code_version="2", group_name=names.ANALYSIS, kinds={"pytorch"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("rollouts"))
def rollouts(context: dg.AssetExecutionContext, study: StudyResource, problems: pl.DataFrame,
             checkpoints: pl.DataFrame):
    """One RL checkpoint's responses, from the same per-rollout seeds as the base's (data version: the content's)."""
    frame, metadata = _sample(context, study, model_of(checkpoints), problems, context.partition_key, "rl")
    context.add_asset_metadata(metadata)
    context.set_data_version(context.asset_key, dg.DataVersion(tables.content_version(frame)))
    yield from checks.output_and_checks("rollouts", frame)
