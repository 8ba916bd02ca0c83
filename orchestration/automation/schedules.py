"""The reanalysis schedule: on its cron (SHIFTLAKE_REANALYSIS_CRON, nightly by default) it finds the stale
and missing asset partitions of every checkpoint (`automation.staleness`) and requests one run per
affected partition for exactly those assets. Partitions that are up to date get no run. The `trend`
asset follows by declarative automation when summaries change."""

from __future__ import annotations

import dagster as dg

from orchestration.automation.jobs import assets_of, checkpoint_job
from orchestration.automation.staleness import asset_specs, find_stale
from orchestration.wiring.resources import StudyResource


def reanalysis_requests(instance: dg.DagsterInstance, study: StudyResource, repo: dg.RepositoryDefinition,
                        tick: str) -> list[dg.RunRequest]:
    """One run request per checkpoint partition with stale or missing assets of `checkpoint_job`, for those."""
    cfg = study.settings()
    stale = find_stale(instance, asset_specs(repo), cfg.required("base_model"), cfg.required("checkpoints_url"),
                       configured=cfg.recorded(), sft_checkpoints_url=cfg.sft_checkpoints_url)
    job_assets = set(assets_of(checkpoint_job, repo))
    runs = []
    for partition, assets in stale.partitions().items():
        selected = [a for a in assets if a in job_assets]
        if selected:
            runs.append(dg.RunRequest(run_key=f"reanalyse:{partition}:{tick}", partition_key=partition,
                                      asset_selection=[dg.AssetKey(a) for a in selected],
                                      tags={"shiftlake/reason": "; ".join(sorted(selected))}))
    return runs


def reanalysis_tick(context: dg.ScheduleEvaluationContext, study: StudyResource):
    """Stale or missing checkpoint partitions -> one run each, for the affected assets only."""
    runs = reanalysis_requests(context.instance, study, context.repository_def,
                               context.scheduled_execution_time.isoformat())
    return runs or dg.SkipReason("every checkpoint partition is up to date")


def reanalysis_schedule(cron: str) -> dg.ScheduleDefinition:
    """The schedule on `cron` (SHIFTLAKE_REANALYSIS_CRON, read by the code location)."""
    return dg.schedule(name="reanalysis_schedule", cron_schedule=cron, job=checkpoint_job,
                       default_status=dg.DefaultScheduleStatus.RUNNING, description=(
                           "Finds the stale and missing asset partitions of every checkpoint (other code versions, "
                           "changed model files, another prompt template, inputs recomputed to other data) and "
                           "requests one checkpoint_job run per affected partition, for exactly those assets."))(
        reanalysis_tick)
