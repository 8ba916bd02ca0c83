"""What the Dagster instance holds, asked in one place: checkpoint partitions, materialisations and the
latest run of each partition. The sensor, staleness, status, the demo and the live demo all read it here."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from assets.cross_sampling import cross_summaries
from assets.summaries import summaries
from orchestration.automation.jobs import checkpoint_job
from orchestration.wiring.partitions import checkpoints_partitions

ANALYSED_BY = (summaries.key.to_user_string(), cross_summaries.key.to_user_string())  # both materialised: analysed


@dataclass(frozen=True)
class LastRun:
    """The latest run Dagster holds for a partition."""
    status: str  # "running" (queued or under way), "failed" or "succeeded"
    ended_at: float | None = None  # unix seconds
    error: str = ""


def partitions(instance: dg.DagsterInstance) -> list[str]:
    """The registered checkpoint partitions."""
    return instance.get_dynamic_partitions(checkpoints_partitions.name)


def add_partitions(instance: dg.DagsterInstance, keys: list[str]) -> list[str]:
    """Register the keys not registered yet (the demo; the sensor returns the same as a request); the new ones."""
    registered = set(partitions(instance))
    new = [k for k in keys if k not in registered]
    if new:
        instance.add_dynamic_partitions(checkpoints_partitions.name, new)
    return new


def latest(instance: dg.DagsterInstance, asset: str, partition: str | None = None, storage_id: int | None = None,
           before: int | None = None):
    """The latest materialisation record of an asset (partition; any partition when None), or the one stored
    under `storage_id`, or the latest stored before the storage id `before`; None when there is none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None,
                              storage_ids=[storage_id] if storage_id is not None else None,
                              before_storage_id=before),
        limit=1).records
    return records[0] if records else None


def materialised_at(instance: dg.DagsterInstance, asset: str, partition: str | None = None) -> float | None:
    """Timestamp of the latest materialisation of an asset (partition), or None."""
    record = latest(instance, asset, partition)
    return record.timestamp if record else None


def materialisation_counts(instance: dg.DagsterInstance, assets: list[str], partition: str | None) -> dict[str, int]:
    """How many times each asset (partition) was materialised so far."""
    counts = {}
    for asset in assets:
        f = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None)
        counts[asset] = len(instance.fetch_materializations(f, limit=10_000).records)
    return counts


def materialised(instance: dg.DagsterInstance, asset: str) -> set[str]:
    """The partitions of `asset` materialised at least once."""
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def analysed(instance: dg.DagsterInstance, keys: list[str]) -> set[str]:
    """The keys whose partitions of every `ANALYSED_BY` asset are materialised."""
    done = set(keys)
    for asset in ANALYSED_BY:
        done &= materialised(instance, asset)
    return done


def last_runs(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, LastRun]:
    """The latest `checkpoint_job` run of each partition, with the first line of its error when it failed."""
    out = {}
    for key in keys:
        runs = instance.get_runs(dg.RunsFilter(job_name=checkpoint_job.name, tags={"dagster/partition": key}), limit=1)
        if not runs:
            continue
        run = runs[0]
        if not run.is_finished:
            out[key] = LastRun("running")
            continue
        record = instance.get_run_record_by_id(run.run_id)
        ended = record.end_time if record else None
        out[key] = (LastRun("failed", ended, _error(instance, run.run_id)) if run.is_failure
                    else LastRun("succeeded", ended))
    return out


def run_record(instance: dg.DagsterInstance, partition: str, job_name: str | None = None):
    """The record of the latest run of a partition (of `job_name`, else of any job), or None."""
    runs = instance.get_runs(dg.RunsFilter(job_name=job_name, tags={"dagster/partition": partition}), limit=1)
    return instance.get_run_record_by_id(runs[0].run_id) if runs else None


def _error(instance: dg.DagsterInstance, run_id: str) -> str:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = record.dagster_event.step_failure_data.error
        if error is not None:
            cause = error.cause or error
            return f"{record.step_key}: {cause.message.strip().splitlines()[-1][:300]}"
    return ""
