"""Scores: the verifier's verdict on every rollout."""

import dagster as dg
import polars as pl

from compute import study as studies
from compute.verifiers import get_verifier
from orchestration.io_manager import PARTITION, TABLE
from orchestration.partitions import BASE_PARTITION, checkpoints_partitions
from orchestration.resources import StudyResource


@dg.asset(code_version="1", group_name="base", kinds={"polars"},
          metadata={TABLE: "scores", PARTITION: BASE_PARTITION})
def base_scores(study: StudyResource, problems: pl.DataFrame, base_rollouts: pl.DataFrame) -> pl.DataFrame:
    """Verdicts on the base policy's rollouts."""
    return studies.scores(base_rollouts, problems, get_verifier(study.settings().verifier))


@dg.asset(code_version="1", group_name="checkpoint", kinds={"polars"}, partitions_def=checkpoints_partitions)
def scores(study: StudyResource, problems: pl.DataFrame, rollouts: pl.DataFrame) -> pl.DataFrame:
    """Verdicts on one RL checkpoint's rollouts."""
    return studies.scores(rollouts, problems, get_verifier(study.settings().verifier))
