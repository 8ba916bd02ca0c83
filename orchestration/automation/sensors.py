"""The checkpoint sensor: every new, complete checkpoint under CHECKPOINTS_URL (or SFT_CHECKPOINTS_URL) becomes a `checkpoints`
partition and gets one `checkpoint_job` run; the base's tables are requested once if they are missing.

A checkpoint counts when `compute.checkpoints.not_ready` finds nothing missing or unloadable and either a marker
file says it is whole or its listing (names, sizes, mtimes) is the one the previous tick saw. The cursor
holds those listings and the run keys already requested; run keys are `<key>@<listing>`, so a daemon
restart that replays a tick neither loses nor duplicates a run. Checkpoints already analysed (their
`cross_summaries` and `summaries` exist) are registered but not re-run; deleted ones keep their partition
and data.

A partition whose run failed is retried: at once when the cause may have changed (the study's settings, the
assets' code versions or the checkpoint's files differ from those of the failed request), else with backoff
(1, 2, 4 ... minutes, at most an hour between tries); retries get run keys `<key>@<listing>#<try>`. Until then
the sensor log names it as failed, with when it is tried next. `plan_tick` holds the logic and knows nothing
about Dagster.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field

import dagster as dg

from assets.inputs import checkpoints
from assets.scores import base_scores
from compute.checkpoints import discover_checkpoints, has_marker, not_ready
from compute.listing import listing_fingerprint
from orchestration.automation import instance as held
from orchestration.automation.instance import LastRun
from orchestration.automation.jobs import base_job, checkpoint_job
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource


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
    failed: dict[str, str] = field(default_factory=dict)  # key -> its last run failed; when it is retried
    deleted: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # partitions with no checkpoint behind them, never analysed
    cursor: dict = field(default_factory=dict)


def retry_after_s(attempts: int) -> float:
    """Seconds after the `attempts`-th failed run before the next try, when nothing else changed."""
    return min(60.0 * 2 ** (attempts - 1), 3600.0)


def plan_tick(candidates: list[Candidate], cursor: dict, registered: set[str], analysed: set[str],
              last_runs: dict[str, LastRun] | None = None, cause: str = "", now: float = 0.0,
              with_rows: set[str] | None = None) -> TickPlan:
    """What one tick does, from what is on disk, the previous cursor and what Dagster already holds
    (`last_runs`: each partition's latest run; `cause`: a fingerprint of the settings and code versions;
    `with_rows`: partitions whose `checkpoints` row was ever written). A registered partition that no folder
    ever backed (not on disk, never requested by the sensor, no row: a key typed into the UI) is removed."""
    seen, last_runs = cursor.get("seen", {}), last_runs or {}
    requested = {k: v if isinstance(v, dict) else {"run_key": v, "attempt": 1, "cause": cause}
                 for k, v in cursor.get("requested", {}).items()}  # cursors of older versions held run keys only
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
        if c.key in analysed:
            continue
        before, last = requested.get(c.key), last_runs.get(c.key)
        if before is None:
            attempt = 1
        elif last is None or last.status != "failed":
            continue  # requested: queued, under way, or done
        else:
            changed = before["cause"] != cause or not before["run_key"].startswith(f"{c.key}@{c.listing}")
            due = (last.ended_at or 0.0) + retry_after_s(before["attempt"])
            if not changed and now < due:
                plan.failed[c.key] = (f"run failed ({last.error or 'see the run'}); try {before['attempt'] + 1} in "
                                      f"{due - now:.0f} s, or at once when settings, code or its files change")
                continue
            attempt = before["attempt"] + 1
        run_key = f"{c.key}@{c.listing}" + (f"#{attempt}" if attempt > 1 else "")
        plan.runs.append((c.key, run_key))
        requested[c.key] = {"run_key": run_key, "attempt": attempt, "cause": cause}
    present = {c.key for c in candidates}
    plan.deleted = sorted(k for k in seen if k not in present)
    plan.removed = sorted(k for k in registered - present - set(requested) - analysed - (with_rows or set())
                          if (last_runs.get(k) or LastRun("none")).status != "running")
    plan.cursor = {"seen": {c.key: c.listing for c in candidates}, "requested": requested}
    return plan


def scan(checkpoints_url: str, sft_checkpoints_url: str = "") -> list[Candidate]:
    return [Candidate(c.key, listing_fingerprint(c.uri), not_ready(c), has_marker(c.uri))
            for c in discover_checkpoints(checkpoints_url, sft_checkpoints_url)]


def cause_fingerprint(settings, context: dg.SensorEvaluationContext | None = None) -> str:
    """What a failed run's cause may hide in: the study's settings and the assets' code versions."""
    versions = []
    repo = context.repository_def if context is not None else None
    if repo is not None:
        versions = sorted((k.to_user_string(), str(a.code_versions_by_key.get(k)))
                          for k, a in repo.assets_defs_by_key.items())
    blob = json.dumps([sorted(dataclasses.asdict(settings).items()), versions], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_tick(context: dg.SensorEvaluationContext, study: StudyResource) -> dg.SensorResult:
    """New complete checkpoints under CHECKPOINTS_URL and SFT_CHECKPOINTS_URL -> new partitions and one run each."""
    cfg = study.settings()
    candidates = scan(cfg.required("checkpoints_url"), cfg.sft_checkpoints_url)
    registered = set(held.partitions(context.instance))
    keys = [c.key for c in candidates]
    done = held.analysed(context.instance, keys)
    plan = plan_tick(candidates, json.loads(context.cursor or "{}"), registered, done,
                     held.last_runs(context.instance, sorted((set(keys) | registered) - done)),
                     cause_fingerprint(cfg, context), time.time(),
                     held.materialised(context.instance, checkpoints.key.to_user_string()))
    runs = [dg.RunRequest(run_key=run_key, partition_key=key, job_name=checkpoint_job.name)
            for key, run_key in plan.runs]
    if runs and held.latest(context.instance, base_scores.key.to_user_string()) is None:
        base = listing_fingerprint(cfg.required("base_model"))
        runs.insert(0, dg.RunRequest(run_key=f"base@{base}", job_name=base_job.name))
    for key, why in plan.waiting.items():
        context.log.info(f"checkpoint {key}: waiting ({why})")
    for key, why in plan.failed.items():
        context.log.warning(f"checkpoint {key}: failed; {why}")
    for key, run_key in plan.runs:
        if "#" in run_key:
            context.log.info(f"checkpoint {key}: retrying its failed analysis ({run_key})")
    if plan.deleted:
        context.log.info(f"checkpoints gone from {cfg.checkpoints_url} (partitions and data kept): {plan.deleted}")
    requests = [checkpoints_partitions.build_add_request(plan.new_partitions)] if plan.new_partitions else []
    if plan.removed:
        requests.append(checkpoints_partitions.build_delete_request(plan.removed))
        context.log.warning(f"removed partitions with no checkpoint under {cfg.checkpoints_url} and no data: "
                            f"{plan.removed} (partitions are the sensor's: one per checkpoint folder)")
    skip = None if runs or requests else (
        f"no new complete checkpoint under {cfg.checkpoints_url}"
        + (f"; failed, awaiting retry: {', '.join(sorted(plan.failed))}" if plan.failed else ""))
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=requests, cursor=json.dumps(plan.cursor),
                           skip_reason=skip)


def tick_interval(interval_s: int) -> int:
    """The minimum interval to declare for ticks `interval_s` seconds apart. Dagster's daemon looks at its sensors
    in a loop of a few seconds (5 in Dagster 1.13) and ticks those whose interval has passed since their last tick
    began; a tick begins a moment after its loop does, so a sensor declared with the loop's own period was due a
    moment after each look and ticked every other loop: every 10 s for 5 s (measured: a checkpoint needs two ticks,
    19 s)."""
    return max(1, interval_s - 1)


def checkpoint_sensor(interval_s: int) -> dg.SensorDefinition:
    """The sensor, ticking every `interval_s` seconds (SHIFTLAKE_SENSOR_INTERVAL_S, read by the code location)."""
    return dg.sensor(name="checkpoint_sensor", jobs=[base_job, checkpoint_job],
                     minimum_interval_seconds=tick_interval(interval_s),
                     default_status=dg.DefaultSensorStatus.RUNNING, description=(
                         "Watches CHECKPOINTS_URL (and SFT_CHECKPOINTS_URL): each new checkpoint, once complete (a marker file, or the same "
                         "files on two ticks), becomes a `checkpoints` partition with one checkpoint_job run; "
                         "failed runs are retried at once when settings, code or files change, else with backoff. "
                         "The only way partitions should be added."))(checkpoint_tick)


def trend_automation(interval_s: int) -> dg.AutomationConditionSensorDefinition:
    """Declarative automation of the trend and the reports, evaluated every `interval_s` seconds."""
    return dg.AutomationConditionSensorDefinition(
        "trend_automation", target=dg.AssetSelection.groups(names.TREND, names.REPORT),
        default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=tick_interval(interval_s),
        description="Refreshes `trend` once checkpoint summaries change, then the reports (declarative automation).")
