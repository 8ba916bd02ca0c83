"""The reanalysis schedule: on its cron (SHIFTLAKE_REANALYSIS_CRON, nightly by default) it finds the stale
and missing asset partitions of every checkpoint (`orchestration.staleness`) and requests one run per
affected partition for exactly those assets. Partitions that are up to date get no run. The `trend`
asset follows by declarative automation when summaries change."""

from __future__ import annotations

import dagster as dg

from compute.settings import from_env
from orchestration.jobs import checkpoint_job
from orchestration.resources import StudyResource
from orchestration.staleness import find_stale


def reanalysis_requests(instance: dg.DagsterInstance, study: StudyResource, tick: str) -> list[dg.RunRequest]:
    from orchestration.definitions import defs

    cfg = study.settings()
    stale = find_stale(instance, list(defs.resolve_all_asset_specs()), cfg.base_model, cfg.checkpoints_url,
                       configured=study.prompts().recorded())
    job_assets = {k.to_user_string() for k in checkpoint_job.selection.resolve(defs.resolve_asset_graph())}
    runs = []
    for partition, assets in stale.partitions().items():
        selected = [a for a in assets if a in job_assets]
        if selected:
            runs.append(dg.RunRequest(run_key=f"reanalyse:{partition}:{tick}", partition_key=partition,
                                      asset_selection=[dg.AssetKey(a) for a in selected],
                                      tags={"shiftlake/reason": "; ".join(sorted(selected))}))
    return runs


@dg.schedule(name="reanalysis_schedule", cron_schedule=from_env().reanalysis_cron, job=checkpoint_job,
             default_status=dg.DefaultScheduleStatus.RUNNING)
def reanalysis_schedule(context: dg.ScheduleEvaluationContext, study: StudyResource):
    """Stale or missing checkpoint partitions -> one run each, for the affected assets only."""
    runs = reanalysis_requests(context.instance, study, context.scheduled_execution_time.isoformat())
    return runs or dg.SkipReason("every checkpoint partition is up to date")
