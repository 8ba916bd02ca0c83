"""The demo and `shiftlake study`: build the toy world if it is the input, register the checkpoints as
partitions, then run the code location's jobs on the persistent Dagster instance, recorded as the UI and the
sensor record their runs (`runs`): `base_job` once, `checkpoint_job` for every checkpoint, `trend_job`, and
`report_job` for every checkpoint; then summarise. A failed run is one message, its stacks in a file."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import dagster as dg

from compute import lakesql
from compute.checkpoints import discover_checkpoints, not_ready
from compute.lake import checkpoint_partition, list_partitions
from compute.paths import REPO_ROOT, dagster_home
from compute.report import report_path
from compute.settings import from_env
from orchestration.app import location, runs, toy
from orchestration.automation import instance as held
from orchestration.automation.jobs import base_job, checkpoint_job, report_job, trend_job


ROLES_COLUMNS = ["step", "role", "accuracy", "share_js_lt_1e3", "share_js_gt_0_1", "js_p50", "js_p99",
                 "top5pct_share_first_tenth", "high_js_rl_top1_in_base_top3", "forward_js_gap_moved"]
AB_COLUMNS = ["arm", "step", "n_seeds", "accuracy", "accuracy_lo", "accuracy_hi", "seed_min", "seed_max",
              "minus_reference", "minus_reference_lo", "minus_reference_hi"]


INSTANCE_CONFIGS = {False: "dagster.yaml", True: "dagster-postgres.yaml"}  # DAGSTER_PG_URL set: PostgreSQL


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME, with the instance settings for SQLite, or for PostgreSQL when DAGSTER_PG_URL is set (`make
    pg-up`). A dagster.yaml of one's own is kept; ours follows DAGSTER_PG_URL (the other store's history stays
    where it was)."""
    home = dagster_home()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    ours = {flag: (REPO_ROOT / "infra" / name).read_text() for flag, name in INSTANCE_CONFIGS.items()}
    postgres = bool(os.environ.get("DAGSTER_PG_URL"))
    current = config.read_text() if config.exists() else None
    if current in (None, *ours.values()) and current != ours[postgres]:
        if current is not None:
            print(f"DAGSTER_PG_URL is {'set' if postgres else 'unset'}: the Dagster instance in {home} is now "
                  f"{'PostgreSQL' if postgres else 'SQLite'}'s (the runs stored in the other stay there)",
                  file=sys.stderr)
        config.write_text(ours[postgres])
    return home


def register_checkpoints(instance: dg.DagsterInstance, checkpoints_url: str, sft_checkpoints_url: str = "") -> list[str]:
    """Add every checkpoint found under `checkpoints_url` (and the SFT run's folder) that can be analysed now as a
    `checkpoints` partition; return their keys."""
    keys = [c.key for c in discover_checkpoints(checkpoints_url, sft_checkpoints_url) if not_ready(c) is None]
    held.add_partitions(instance, keys)
    return keys


def rotated_away(instance: dg.DagsterInstance, lake_url: str, present: list[str]) -> list[str]:
    """Registered checkpoints whose folders are gone but whose rows (and so models in the store) are in the
    lake: they are analysed again from the model store, so that every result printed is current."""
    in_lake = set(list_partitions(lake_url, "checkpoints"))
    return [k for k in held.partitions(instance) if k not in present and checkpoint_partition(k) in in_lake]


def _run(runner: runs.Runner, job, keys: list[str | None], timings: dict[str, float], log) -> None:
    """Run `job` once per key (None: unpartitioned); add each asset step's seconds to `timings`. A failed run
    raises `StudyFailed` with its cause once, the full stacks going to a file."""
    for key in keys:
        t = time.perf_counter()
        run = runner.run(job.name, key)
        for step, seconds in runner.step_seconds(run.run_id).items():
            timings[f"asset {step}"] = timings.get(f"asset {step}", 0.0) + seconds
        log(f"{job.name}{f'[{key}]' if key else ''}: {time.perf_counter() - t:.1f} s (run {run.run_id[:8]})")


def run_demo(log=print, by: str = "demo") -> dict[str, float]:
    """Run the whole study on the configured models (the toy world by default): runs of the code location's
    jobs, recorded as the UI records its runs (`by` tags them); returns seconds per stage."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if toy.toy_inputs(build=True, log=log):
        timings["toy world"] = time.perf_counter() - t0
    settings = from_env()
    home = ensure_dagster_home()

    with dg.DagsterInstance.get() as instance:
        keys = register_checkpoints(instance, settings.checkpoints_url, settings.sft_checkpoints_url)
        keys = sorted(keys + rotated_away(instance, settings.lake_url, keys))
        if not keys:
            raise FileNotFoundError(f"no checkpoints under {settings.checkpoints_url}")
        # the code location reads the environment when it loads: after the toy world's inputs are set
        with runs.code_location(instance, by) as runner:
            log(f"runs of the jobs of the code location {location.CODE_LOCATION} (the UI shows them under their "
                f"jobs); their console output: {runner.output}")
            _run(runner, base_job, [None], timings, log)
            _run(runner, checkpoint_job, keys, timings, log)
            _run(runner, trend_job, [None], timings, log)
            _run(runner, report_job, keys, timings, log)
    timings["total"] = time.perf_counter() - t0
    log("")
    log("Accuracy with 95% bootstrap intervals over problems (sql/queries/demo_summary.sql)")
    log(lakesql.render(lakesql.run(lakesql.query_text("demo_summary"), settings.lake_url)))
    log("\nCross-sampling: the js rule moving the most of the RL-base accuracy gap with <= 10% of tokens switched, "
        "chosen on one half of the problems and measured on the other, against the random control at that budget "
        "(sql/queries/cross_sampling_budget.sql; these columns: demo_cross_sampling.sql)")
    log(lakesql.render(lakesql.run(lakesql.query_text("demo_cross_sampling"), settings.lake_url)))
    if (roles := lakesql.run(lakesql.query_text("roles"), settings.lake_url)).height:  # an SFT run beside the RL run
        log("\nRL against SFT at the same steps: sparsity, position, reranking, cross-sampling (sql/queries/roles.sql)")
        log(lakesql.render(roles.select(ROLES_COLUMNS)))
    if settings.ab_curves_url:
        log("\nA/B: GRPO with and without divergence-weighted advantages, accuracy by step, 95% intervals over seeds "
            "and problems (sql/queries/advantage_ab.sql)")
        log(lakesql.render(lakesql.run(lakesql.query_text("advantage_ab"), settings.lake_url).select(AB_COLUMNS)))
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
    log("\nReports (the paper's figures and the A/B per checkpoint; open in a browser; shiftlake report rewrites them):")
    for key in keys:
        log(f"  {report_path(settings.lake_url, key)}")
    return timings
