"""The product end to end, on the toy world: the demo's seconds per asset, the checks' share of them, the
sensor's latency with a real daemon, and the demo on a local lake against S3.

demo    the demo's seconds per asset on a fresh temporary lake and Dagster instance
checks  the data-quality checks' time as a share of their assets' own time, on a fresh demo lake
sensor  a real daemon on a temporary instance with the first toy checkpoint analysed: seconds from the
        second checkpoint's folder landing to its summaries being queryable (split into detection by the
        sensor, queue and launch, analysis), and how many materialisations the first one got meanwhile
s3      the demo's wall time with the lake in a local folder and on S3 (the server in AWS_ENDPOINT_URL, else
        a temporary SeaweedFS), one after the other, and the js_percentiles query's latency on both lakes
"""

from __future__ import annotations

import os
import tempfile
import time

from compute.checkpoints import discover_checkpoints
from compute.toyworld.world import build_world
from compute.processes import stop_group
from orchestration.app import location
from orchestration.automation.instance import ANALYSED_BY, materialisation_counts, materialised_at, run_record
from orchestration.automation.jobs import assets_of, checkpoint_job
from orchestration.wiring.io_manager import table_of


def bench_demo(checks: bool = False) -> None:
    from orchestration.app.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAKE_URL"] = os.path.join(tmp, "lake")
        os.environ["DAGSTER_HOME"] = os.path.join(tmp, "dagster")
        timings = run_demo(log=lambda *_: None)
        print("demo wall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
        if checks:
            _check_share(os.environ["LAKE_URL"], timings)


def _assets_of_tables() -> dict[str, list[str]]:
    """Lake table -> the assets that write it (`base_rollouts` and `rollouts` both write `rollouts`)."""
    out: dict[str, list[str]] = {}
    for spec in location.load().resolve_all_asset_specs():
        out.setdefault(table_of(spec.key, spec.metadata), []).append(spec.key.to_user_string())
    return out


def _check_share(lake_url: str, timings: dict[str, float]) -> None:
    """Check seconds per table (run again over the lake) against the assets' step seconds minus the checks
    they ran inside them."""
    from compute.quality import check_lake

    assets_of_table = _assets_of_tables()
    seconds: dict[str, float] = {}
    for _, result in check_lake(lake_url):
        seconds[result.table] = seconds.get(result.table, 0.0) + result.metadata["seconds"]
    parts, total_check, total_asset = [], 0.0, 0.0
    for table, check_s in seconds.items():
        step_s = sum(timings.get(f"asset {a}", 0.0) for a in assets_of_table[table])
        own = max(step_s - check_s, 1e-9)
        parts.append(f"{table} {check_s:.2f} s / {own:.2f} s = {check_s / own:.0%}")
        total_check, total_asset = total_check + check_s, total_asset + own
    print("data-quality checks vs their assets' own time: " + "; ".join(parts)
          + f"; all checked assets {total_check:.1f} s / {total_asset:.1f} s = {total_check / total_asset:.1%}")


def bench_sensor(interval_s: int = 5) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import dagster as dg

    from orchestration.app.live import start_daemon, wait_for

    found = discover_checkpoints(build_world() / "checkpoints")[:2]  # in step order
    (first, second), keys = [Path(c.uri) for c in found], [c.key for c in found]
    job_assets = assets_of(checkpoint_job, location.load().get_repository_def())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "checkpoints").mkdir()
        shutil.copytree(first, tmp / "checkpoints" / first.name)
        env = {**os.environ, "DAGSTER_HOME": str(tmp / "dagster"), "LAKE_URL": str(tmp / "lake"),
               "CHECKPOINTS_URL": str(tmp / "checkpoints"), "SHIFTLAKE_SENSOR_INTERVAL_S": str(interval_s)}
        subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo"], env=env, check=True, capture_output=True)
        saved, os.environ["DAGSTER_HOME"] = os.environ.get("DAGSTER_HOME"), env["DAGSTER_HOME"]
        daemon = start_daemon(env, log_file=tmp / "daemon.log")
        try:
            with dg.DagsterInstance.get() as instance:
                before = materialisation_counts(instance, job_assets, keys[0])
                time.sleep(interval_s)
                landed = time.time()
                shutil.copytree(second, tmp / "checkpoints" / second.name)
                done = wait_for(lambda: all(materialised_at(instance, a, keys[1]) for a in ANALYSED_BY)
                                and max(materialised_at(instance, a, keys[1]) for a in ANALYSED_BY),
                                timeout=900, what=f"the analysis of {keys[1]}")
                record = run_record(instance, keys[1], checkpoint_job.name)  # not a report run queued after it
                after = materialisation_counts(instance, job_assets, keys[0])
        finally:
            stop_group(daemon)
            if saved is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = saved
    created, started = record.create_timestamp.timestamp(), record.start_time
    print(f"sensor latency, toy world, {keys[1]} landing with {keys[0]} analysed (sensor interval {interval_s} s): "
          f"summaries queryable after {done - landed:.1f} s = detection {created - landed:.1f} s (two sensor "
          f"ticks: seen, then unchanged) + queue and launch {started - created:.1f} s + run {done - started:.1f} s; "
          f"without detection {done - created:.1f} s. {keys[0]} re-materialised meanwhile: "
          f"{sum(after.values()) - sum(before.values())} asset partitions")


def bench_s3(repeats: int = 5) -> None:
    import statistics
    import subprocess
    import sys
    from pathlib import Path

    from compute import lakesql

    server = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from infra import s3local

        state = Path(tempfile.mkdtemp(prefix="shiftlake-s3-"))
        server = s3local.start(state=state, identities=state / "identities.json")
        os.environ.update({k: v for k, v in server.env.items() if k != "LAKE_URL"})
    build_world()
    walls, latency = {}, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lakes = {"local": os.path.join(tmp, "lake"), "s3": f"s3://shiftlake/bench-{os.getpid()}"}
            for name, url in lakes.items():
                env = {**os.environ, "LAKE_URL": url, "DAGSTER_HOME": os.path.join(tmp, f"dagster-{name}")}
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo"], env=env, check=True,
                               capture_output=True)
                walls[name] = time.perf_counter() - t
            query = lakesql.query_text("js_percentiles")
            for name, url in lakes.items():
                lakesql.run(query, url)  # warm: imports, filesystem objects
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    lakesql.run(query, url)
                    times.append(time.perf_counter() - t)
                latency[name] = statistics.median(times)
    finally:
        if server is not None:
            stop_group(server.process, timeout=30.0)
    print(f"demo wall time (toy world cached, every asset of 4 checkpoints): local {walls['local']:.1f} s, "
          f"S3 ({os.environ['AWS_ENDPOINT_URL']}) {walls['s3']:.1f} s, ratio S3/local {walls['s3'] / walls['local']:.2f}")
    print(f"js_percentiles query, median of {repeats} (views built on each connection): local "
          f"{latency['local'] * 1000:.0f} ms, S3 {latency['s3'] * 1000:.0f} ms")
