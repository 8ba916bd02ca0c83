"""Jobs: the base model's tables once (`base_job`), then one run per checkpoint partition (`checkpoint_job`);
selected by the assets' groups (`wiring.names`), so a new asset joins its job by its group alone."""

from __future__ import annotations

import dagster as dg

from assets.inputs import base_model, checkpoints, problems
from orchestration.wiring import names

base_job = dg.define_asset_job(
    "base_job", selection=dg.AssetSelection.assets(problems, base_model) | dg.AssetSelection.groups(names.BASE),
    description="Problems, the base model's row, its rollouts and their scores: computed once.")

checkpoint_job = dg.define_asset_job(
    "checkpoint_job", selection=dg.AssetSelection.assets(checkpoints) | dg.AssetSelection.groups(names.ANALYSIS),
    description="Everything about one checkpoint (an RL run's, or an SFT run's), one partition per run.")

trend_job = dg.define_asset_job(
    "trend_job", selection=dg.AssetSelection.groups(names.TREND),
    description="The trend across every analysed checkpoint (also refreshed by declarative automation).")

report_job = dg.define_asset_job(
    "report_job", selection=dg.AssetSelection.groups(names.REPORT),
    description="The HTML report of one checkpoint (also refreshed by declarative automation).")

JOBS = (base_job, checkpoint_job, trend_job, report_job)


def assets_of(job, repo: dg.RepositoryDefinition) -> list[str]:
    """The names of the assets `job` selects in the code location `repo`, in graph order."""
    selected = job.selection.resolve(repo.asset_graph)
    return [k.to_user_string() for k in repo.asset_graph.toposorted_asset_keys if k in selected]
