"""Scores: the verifier's verdict on every rollout."""

import dagster as dg
import polars as pl

from assets import checks
from compute import tables
from compute.lake import BASE_PARTITION
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource


def verdicts(study: StudyResource, frame: pl.DataFrame, problems: pl.DataFrame,
             keys: tuple[str, ...] = tables.ROLLOUT_KEYS) -> pl.DataFrame:
    """Verdicts on `frame`'s responses (`compute.tables.scores`) with the configured verifiers."""
    cfg = study.settings()
    return tables.scores(frame, problems, cfg.verifier, keys, cfg.verify_timeout_s, cfg.verify_workers)


@dg.asset(code_version="3", group_name=names.BASE, kinds={"polars"},
          metadata={names.TABLE: "scores", names.PARTITION: BASE_PARTITION}, check_specs=checks.specs("base_scores"))
def base_scores(study: StudyResource, problems: pl.DataFrame, base_rollouts: pl.DataFrame):
    """Verdicts on the base policy's rollouts."""
    yield from checks.output_and_checks("scores", verdicts(study, base_rollouts, problems), {"rollouts": base_rollouts})


@dg.asset(code_version="3", group_name=names.ANALYSIS, kinds={"polars"}, partitions_def=checkpoints_partitions,
          check_specs=checks.specs("scores"))
def scores(study: StudyResource, problems: pl.DataFrame, rollouts: pl.DataFrame):
    """Verdicts on one RL checkpoint's rollouts."""
    yield from checks.output_and_checks("scores", verdicts(study, rollouts, problems), {"rollouts": rollouts})
