"""The demo: build the toy world if needed, register its checkpoints as partitions, run `base_job` once
and `checkpoint_job` for every checkpoint on the persistent Dagster instance, then summarise."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from compute import lakesql
from compute.checkpoints import discover_checkpoints, not_ready
from compute.settings import from_env
from compute.toyworld.world import REPO_ROOT, build_world


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".shiftlake" / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((REPO_ROOT / "infra" / "dagster.yaml").read_text())
    return home


def register_checkpoints(instance: dg.DagsterInstance, checkpoints_url: str) -> list[str]:
    """Add every checkpoint found under `checkpoints_url` that can be analysed now as a `checkpoints` partition;
    return their keys."""
    from orchestration.partitions import checkpoints_partitions

    keys = [c.key for c in discover_checkpoints(checkpoints_url) if not_ready(c) is None]
    known = set(instance.get_dynamic_partitions(checkpoints_partitions.name))
    new = [k for k in keys if k not in known]
    if new:
        instance.add_dynamic_partitions(checkpoints_partitions.name, new)
    return keys


def rotated_away(instance: dg.DagsterInstance, lake_url: str, present: list[str]) -> list[str]:
    """Registered checkpoints whose folders are gone but whose rows (and so models in the store) are in the
    lake: they are analysed again from the model store, so that every result printed is current."""
    from compute.lake import list_partitions
    from orchestration.partitions import checkpoints_partitions

    in_lake = set(list_partitions(lake_url, "checkpoints"))
    return [k for k in instance.get_dynamic_partitions(checkpoints_partitions.name)
            if k not in present and f"checkpoint={k}" in in_lake]


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # failures: one message, by StudyFailed


class StudyFailed(Exception):
    """A run of the study failed: `str()` is the cause once (what, where, the fix), `log` the full record."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


def log_dir() -> Path:
    return Path(os.environ.get("DAGSTER_HOME") or REPO_ROOT / ".shiftlake" / "dagster") / "failures"


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
    if "BASE_MODEL" not in os.environ:
        build_world(log=log)
        timings["toy world"] = time.perf_counter() - t0
    settings = from_env()
    home = ensure_dagster_home()
    from orchestration.definitions import defs  # resources are read from the environment at import

    with dg.DagsterInstance.get() as instance:
        keys = register_checkpoints(instance, settings.checkpoints_url)
        keys = sorted(keys + rotated_away(instance, settings.lake_url, keys))
        if not keys:
            raise FileNotFoundError(f"no checkpoints under {settings.checkpoints_url}")
        _run(defs.resolve_job_def("base_job"), instance, None, timings, log)
        for key in keys:
            _run(defs.resolve_job_def("checkpoint_job"), instance, key, timings, log)
        _run(defs.resolve_job_def("trend_job"), instance, None, timings, log)
        for key in keys:
            _run(defs.resolve_job_def("report_job"), instance, key, timings, log)
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
    from compute.report import report_path

    log("\nReports (the paper's seven figures per checkpoint; open in a browser; shiftlake report rewrites them):")
    for key in keys:
        log(f"  {report_path(settings.lake_url, key)}")
    return timings


def live_paths(root: Path | None = None) -> dict[str, Path]:
    """The live demo's own checkpoint folder, lake and instance (under $SHIFTLAKE_LIVE_DIR if set)."""
    root = root or Path(os.environ.get("SHIFTLAKE_LIVE_DIR") or REPO_ROOT / ".shiftlake" / "live")
    return {"root": root, "checkpoints": root / "checkpoints", "lake": root / "lake", "dagster": root / "dagster"}


def run_live(log=print, ui: bool = True, timeout_s: float = 1800.0, root: Path | None = None) -> dict[str, float]:
    """`shiftlake demo --live`: the toy GRPO run writes checkpoints into an empty folder while the Dagster
    daemon (and UI) runs; the checkpoint sensor registers each one and a run analyses it. Prints, per
    checkpoint, the seconds from its folder appearing to its summaries being queryable; returns them."""
    import shutil
    import subprocess
    import sys

    from compute.checkpoints import discover_checkpoints
    from orchestration.live import materialised_at, start_daemon, stop

    build_world(log=log)
    paths = live_paths(root)
    shutil.rmtree(paths["root"], ignore_errors=True)
    paths["checkpoints"].mkdir(parents=True)
    env = {**os.environ, "CHECKPOINTS_URL": str(paths["checkpoints"]), "LAKE_URL": str(paths["lake"]),
           "DAGSTER_HOME": str(paths["dagster"])}
    env.setdefault("SHIFTLAKE_SENSOR_INTERVAL_S", "5")
    for var in ("BASE_MODEL", "PROBLEMS_URL"):  # the toy world's, to match its GRPO run
        env.pop(var, None)
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    ensure_dagster_home()
    with dg.DagsterInstance.get():  # create the instance's databases before other processes open them
        pass
    writer = subprocess.Popen([sys.executable, "-m", "compute.toyworld.live", str(paths["checkpoints"])], env=env,
                              start_new_session=True)
    daemon = start_daemon(env, ui=ui, log_file=paths["root"] / "dagster.log")
    log(f"toy GRPO writing into {paths['checkpoints']}; Dagster {'UI on http://127.0.0.1:3000 and ' if ui else ''}"
        f"daemon running (log: {paths['root'] / 'dagster.log'}); sensor every {env['SHIFTLAKE_SENSOR_INTERVAL_S']} s")
    appeared: dict[str, float] = {}
    latency: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    try:
        with dg.DagsterInstance.get() as instance:
            while time.monotonic() < deadline:
                for c in discover_checkpoints(paths["checkpoints"]):
                    appeared.setdefault(c.key, time.time())
                for key, t in appeared.items():
                    done = [materialised_at(instance, a, key) for a in ("summaries", "cross_summaries")]
                    if key not in latency and all(done):
                        latency[key] = max(done) - t
                        log(f"{key}: summaries queryable {latency[key]:.0f} s after its folder appeared")
                trend_at = materialised_at(instance, "trend")
                if (writer.poll() is not None and appeared and len(latency) == len(appeared)
                        and trend_at and trend_at >= max(appeared.values())):
                    break
                time.sleep(2)
            else:
                raise TimeoutError(f"the live demo did not finish within {timeout_s:.0f} s; see {paths['root']}")
    finally:
        stop(daemon)
        stop(writer)
    log("")
    log(lakesql.render(lakesql.run(lakesql.query_text("checkpoint_trend"), str(paths["lake"]))))
    log(f"live lake: {paths['lake']}    DAGSTER_HOME: {paths['dagster']}")
    return latency
