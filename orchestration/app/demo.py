"""The demo and `shiftlake study`: build the toy world if it is the input, register the checkpoints as
partitions, run `base_job` once and `checkpoint_job` for every checkpoint on the persistent Dagster instance
(the code location loaded by name), then summarise; a failed run is one message, its stacks in a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from compute import lakesql
from compute.checkpoints import discover_checkpoints, not_ready
from compute.lake import checkpoint_partition, list_partitions
from compute.paths import REPO_ROOT, dagster_home
from compute.report import report_path
from compute.settings import from_env
from orchestration.app import location, toy
from orchestration.automation import instance as held
from orchestration.automation.jobs import base_job, checkpoint_job, report_job, trend_job


def ensure_dagster_home() -> Path:
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((REPO_ROOT / "infra" / "dagster.yaml").read_text())
    return home


def register_checkpoints(instance: dg.DagsterInstance, checkpoints_url: str) -> list[str]:
    """Add every checkpoint found under `checkpoints_url` that can be analysed now as a `checkpoints` partition;
    return their keys."""
    keys = [c.key for c in discover_checkpoints(checkpoints_url) if not_ready(c) is None]
    held.add_partitions(instance, keys)
    return keys


def rotated_away(instance: dg.DagsterInstance, lake_url: str, present: list[str]) -> list[str]:
    """Registered checkpoints whose folders are gone but whose rows (and so models in the store) are in the
    lake: they are analysed again from the model store, so that every result printed is current."""
    in_lake = set(list_partitions(lake_url, "checkpoints"))
    return [k for k in held.partitions(instance) if k not in present and checkpoint_partition(k) in in_lake]


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # failures: one message, by StudyFailed


class StudyFailed(Exception):
    """A run of the study failed: `str()` is the cause once (what, where, the fix), `log` the full record."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


def log_dir() -> Path:
    return dagster_home() / "failures"


def _failure(result: dg.ExecuteInProcessResult, job_name: str, partition_key: str | None) -> StudyFailed:
    """The first failed step's own error, once, and every failed step's full stack in a file."""
    failures = result.get_step_failure_events()
    where = f"{job_name}{f'[{partition_key}]' if partition_key else ''}"
    path = log_dir() / f"{result.run_id}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = []
    for event in failures:
        error = event.event_specific_data.error
        blocks.append(f"step {event.step_key} of {where} (run {result.run_id}):\n{error.to_string()}")
    path.write_text("\n\n".join(blocks) or f"run {result.run_id} of {where} failed without a step failure")
    if not failures:
        return StudyFailed(f"{where} failed (run {result.run_id[:8]})", path)
    error = failures[0].event_specific_data.error
    while error.cause is not None and error.cls_name.startswith("Dagster"):  # Dagster's wrappers: to the cause
        error = error.cause
    message = error.message.strip()
    message = message.split(": ", 1)[1] if message.startswith(f"{error.cls_name}: ") else message
    return StudyFailed(f"{failures[0].step_key} failed in {where}: {message}", path)


def _run(job, instance, partition_key: str | None, timings: dict[str, float], log) -> None:
    """Execute one run on `instance`; add each asset step's seconds to `timings`. A failed run raises
    `StudyFailed` with its cause once, the full stacks going to a file."""
    t = time.perf_counter()
    result = job.execute_in_process(instance=instance, partition_key=partition_key, run_config=QUIET,
                                    raise_on_error=False)
    if not result.success:
        raise _failure(result, job.name, partition_key)
    for event in result.get_step_success_events():
        step = f"asset {event.step_key}"
        timings[step] = timings.get(step, 0.0) + event.event_specific_data.duration_ms / 1000
    log(f"{job.name}{f'[{partition_key}]' if partition_key else ''}: {time.perf_counter() - t:.1f} s "
        f"(run {result.run_id[:8]})")


def run_demo(log=print) -> dict[str, float]:
    """Run the whole study on the configured models (the toy world by default); returns seconds per stage."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if toy.toy_inputs(build=True, log=log):
        timings["toy world"] = time.perf_counter() - t0
    settings = from_env()
    home = ensure_dagster_home()
    defs = location.load()  # after the environment is complete: the location reads it when it loads

    with dg.DagsterInstance.get() as instance:
        keys = register_checkpoints(instance, settings.checkpoints_url)
        keys = sorted(keys + rotated_away(instance, settings.lake_url, keys))
        if not keys:
            raise FileNotFoundError(f"no checkpoints under {settings.checkpoints_url}")
        _run(defs.resolve_job_def(base_job.name), instance, None, timings, log)
        for key in keys:
            _run(defs.resolve_job_def(checkpoint_job.name), instance, key, timings, log)
        _run(defs.resolve_job_def(trend_job.name), instance, None, timings, log)
        for key in keys:
            _run(defs.resolve_job_def(report_job.name), instance, key, timings, log)
    timings["total"] = time.perf_counter() - t0
    log("")
    log(lakesql.render(lakesql.run(lakesql.query_text("demo_summary"), settings.lake_url)))
    log("\nCross-sampling: the js rule moving the most of the RL-base accuracy gap with <= 10% of tokens "
        "switched, and the random control at that budget (sql/queries/cross_sampling_budget.sql)")
    log(lakesql.render(lakesql.run(lakesql.query_text("cross_sampling_budget"), settings.lake_url)))
    log("\nwall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    log(f"\nlake: {settings.lake_url}    checkpoints: {settings.checkpoints_url}    DAGSTER_HOME: {home}")
    log("Look at it:\n  make ui                      # Dagster UI: assets, partitions, runs\n"
        "  source .venv/bin/activate    # puts shiftlake on PATH")
    for q in ('shiftlake sql js_percentiles',
              'shiftlake sql "SELECT checkpoint, policy, position, token_text, js FROM token_shifts ORDER BY js DESC LIMIT 10"',
              'shiftlake sql topk_reranking --format csv',
              'shiftlake sql cross_sampling_curve',
              'shiftlake sql checkpoint_trend'):
        log(f"  {q}")
    log("\nReports (the paper's seven figures per checkpoint; open in a browser; shiftlake report rewrites them):")
    for key in keys:
        log(f"  {report_path(settings.lake_url, key)}")
    return timings
