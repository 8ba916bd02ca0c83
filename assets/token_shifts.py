"""Token shifts: base vs RL next-token distributions along every response token of both policies."""

import dagster as dg
import polars as pl

from assets import checks
from compute import tables
from compute.modelstore import model_of
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource


@dg.asset(code_version="2", group_name=names.ANALYSIS, kinds={"pytorch"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("token_shifts"))
def token_shifts(context: dg.AssetExecutionContext, study: StudyResource, base_model: pl.DataFrame,
                 checkpoints: pl.DataFrame, base_rollouts: pl.DataFrame, rollouts: pl.DataFrame):
    """Teacher-forced paired pass of base and RL over the base's and this checkpoint's rollouts."""
    workers = study.workers(context)
    base, rl = workers.model(model_of(base_model)), workers.model(model_of(checkpoints))
    both = pl.concat([base_rollouts, rollouts], how="vertical_relaxed")
    frame = tables.token_shifts(base, rl, both, context.partition_key, study.settings().paired(), workers.pool)
    context.add_asset_metadata(workers.metadata())
    yield from checks.output_and_checks("token_shifts", frame, {"rollouts": both}, vocab=len(base.tokenizer))
