"""The checkpoint sensor: every new, complete checkpoint under CHECKPOINTS_URL becomes a `checkpoints`
partition and gets one `checkpoint_job` run; the base's tables are requested once if they are missing.

A checkpoint counts when `compute.checkpoints.incomplete_reason` finds nothing missing and either a marker
file says it is whole or its listing (names, sizes, mtimes) is the one the previous tick saw. The cursor
holds those listings and the run keys already requested; run keys are `<key>@<listing>`, so a daemon
restart that replays a tick neither loses nor duplicates a run. Checkpoints already analysed (their
`cross_summaries` and `summaries` exist) are registered but not re-run; deleted ones keep their partition
and data. `plan_tick` holds the logic and knows nothing about Dagster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import dagster as dg

from compute.checkpoints import discover_checkpoints, has_marker, incomplete_reason, listing_fingerprint
from compute.settings import from_env
from orchestration.jobs import base_job, checkpoint_job
from orchestration.partitions import checkpoints_partitions
from orchestration.resources import StudyResource

ANALYSED_BY = ("summaries", "cross_summaries")


@dataclass(frozen=True)
class Candidate:
    key: str
    listing: str
    incomplete: str | None  # why it cannot be analysed yet; None when complete
    marker: bool = False


@dataclass
class TickPlan:
    new_partitions: list[str] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (partition key, run key)
    waiting: dict[str, str] = field(default_factory=dict)  # key -> why not yet
    deleted: list[str] = field(default_factory=list)
    cursor: dict = field(default_factory=dict)


def plan_tick(candidates: list[Candidate], cursor: dict, registered: set[str], analysed: set[str]) -> TickPlan:
    """What one tick does, from what is on disk, the previous cursor and what Dagster already holds."""
    seen, requested = cursor.get("seen", {}), dict(cursor.get("requested", {}))
    plan = TickPlan()
    for c in candidates:
        if c.incomplete:
            plan.waiting[c.key] = c.incomplete
            continue
        if not c.marker and seen.get(c.key) != c.listing:
            plan.waiting[c.key] = "files changed since the previous tick" if c.key in seen else "first seen"
            continue
        if c.key not in registered:
            plan.new_partitions.append(c.key)
        run_key = f"{c.key}@{c.listing}"
        if c.key not in analysed and c.key not in requested:
            plan.runs.append((c.key, run_key))
            requested[c.key] = run_key
    present = {c.key for c in candidates}
    plan.deleted = sorted(k for k in seen if k not in present)
    plan.cursor = {"seen": {c.key: c.listing for c in candidates}, "requested": requested}
    return plan


def scan(checkpoints_url: str) -> list[Candidate]:
    return [Candidate(c.key, listing_fingerprint(c.uri), incomplete_reason(c.uri), has_marker(c.uri))
            for c in discover_checkpoints(checkpoints_url)]


def _analysed(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    done = set(keys)
    for asset in ANALYSED_BY:
        done &= set(instance.get_materialized_partitions(dg.AssetKey(asset)))
    return done


def _base_missing(instance: dg.DagsterInstance) -> bool:
    return instance.get_latest_materialization_event(dg.AssetKey("base_scores")) is None


@dg.sensor(name="checkpoint_sensor", jobs=[base_job, checkpoint_job], default_status=dg.DefaultSensorStatus.RUNNING,
           minimum_interval_seconds=from_env().sensor_interval_s)
def checkpoint_sensor(context: dg.SensorEvaluationContext, study: StudyResource) -> dg.SensorResult:
    """New complete checkpoints under CHECKPOINTS_URL -> new partitions and one run each."""
    cfg = study.settings()
    candidates = scan(cfg.checkpoints_url)
    registered = set(context.instance.get_dynamic_partitions(checkpoints_partitions.name))
    plan = plan_tick(candidates, json.loads(context.cursor or "{}"), registered,
                     _analysed(context.instance, [c.key for c in candidates]))
    runs = [dg.RunRequest(run_key=run_key, partition_key=key, job_name=checkpoint_job.name)
            for key, run_key in plan.runs]
    if runs and _base_missing(context.instance):
        runs.insert(0, dg.RunRequest(run_key=f"base@{listing_fingerprint(cfg.base_model)}", job_name=base_job.name))
    for key, why in plan.waiting.items():
        context.log.info(f"checkpoint {key}: waiting ({why})")
    if plan.deleted:
        context.log.info(f"checkpoints gone from {cfg.checkpoints_url} (partitions and data kept): {plan.deleted}")
    requests = [checkpoints_partitions.build_add_request(plan.new_partitions)] if plan.new_partitions else []
    skip = None if runs or requests else f"no new complete checkpoint under {cfg.checkpoints_url}"
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=requests, cursor=json.dumps(plan.cursor),
                           skip_reason=skip)


trend_automation = dg.AutomationConditionSensorDefinition(
    "trend_automation", target=dg.AssetSelection.assets("trend", "report"), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=from_env().sensor_interval_s,
    description="Refreshes `trend` once checkpoint summaries change, then the reports (declarative automation).")
