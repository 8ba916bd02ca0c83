"""Scores: the verifier's verdict on every rollout."""

import dagster as dg
import polars as pl

from assets import checks
from orchestration.io_manager import PARTITION, TABLE
from orchestration.partitions import BASE_PARTITION, checkpoints_partitions
from orchestration.resources import StudyResource


@dg.asset(code_version="3", group_name="base", kinds={"polars"},
          metadata={TABLE: "scores", PARTITION: BASE_PARTITION}, check_specs=checks.specs("base_scores"))
def base_scores(study: StudyResource, problems: pl.DataFrame, base_rollouts: pl.DataFrame):
    """Verdicts on the base policy's rollouts."""
    yield from checks.output_and_checks("scores", study.score(base_rollouts, problems), {"rollouts": base_rollouts})


@dg.asset(code_version="3", group_name="checkpoint", kinds={"polars"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("scores"))
def scores(study: StudyResource, problems: pl.DataFrame, rollouts: pl.DataFrame):
    """Verdicts on one RL checkpoint's rollouts."""
    yield from checks.output_and_checks("scores", study.score(rollouts, problems), {"rollouts": rollouts})
