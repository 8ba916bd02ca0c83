"""Sampled responses: the base model's once, each RL checkpoint's per partition."""

import dagster as dg
import polars as pl

from assets import checks
from compute import study as studies
from compute.modelstore import model_of
from orchestration.io_manager import PARTITION, TABLE
from orchestration.partitions import BASE_PARTITION, checkpoints_partitions
from orchestration.resources import StudyResource


def _sample(study: StudyResource, uri: str, problems: pl.DataFrame, checkpoint: str, policy: str) -> pl.DataFrame:
    cfg = study.settings()
    return studies.rollouts(study.model(uri), problems, checkpoint, policy, cfg.samples_per_problem,
                            study.sampling(), cfg.seed, cfg.batch_size)


@dg.asset(code_version="1", group_name="base", kinds={"pytorch"},
          metadata={TABLE: "rollouts", PARTITION: BASE_PARTITION}, check_specs=checks.specs("base_rollouts"))
def base_rollouts(study: StudyResource, problems: pl.DataFrame, base_model: pl.DataFrame):
    """The base policy's responses, computed once and reused by every checkpoint."""
    yield from checks.output_and_checks("rollouts", _sample(study, model_of(base_model), problems, "base", "base"))


@dg.asset(code_version="1", group_name="checkpoint", kinds={"pytorch"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("rollouts"))
def rollouts(context: dg.AssetExecutionContext, study: StudyResource, problems: pl.DataFrame,
             checkpoints: pl.DataFrame):
    """One RL checkpoint's responses, from the same per-rollout seeds as the base's."""
    yield from checks.output_and_checks("rollouts", _sample(study, model_of(checkpoints), problems,
                                                            context.partition_key, "rl"))
