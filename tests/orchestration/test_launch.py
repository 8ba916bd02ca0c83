"""Runs launched on the code location (the demo's and the study's way, the UI's and the sensor's too): each is
recorded with its job and code location, its step timings are read back, and every process a run starts ends
with it. What stays while the code server lives is Dagster's own resource tracker, which the server starts
the first time it launches a run (a spawn-context queue per run) and which ends with the server."""

import os
import time
from pathlib import Path

import dagster as dg
import pytest

from orchestration.app import launch
from orchestration.app.demo import ensure_dagster_home
from orchestration.automation.jobs import base_job

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid`, with its command line (from /proc)."""
    parents, commands = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":  # zombies have ended
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = {}, [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        out.update({p: commands.get(p, "") for p in children})
        frontier = children
    return out


def test_a_launched_run_is_the_jobs_and_leaves_no_process_behind(small_world, tmp_path, monkeypatch):
    for var, value in {"DAGSTER_HOME": tmp_path / "dagster", "LAKE_URL": tmp_path / "lake",
                       "BASE_MODEL": small_world / "base", "CHECKPOINTS_URL": small_world / "checkpoints",
                       "PROBLEMS_URL": small_world / "problems.jsonl"}.items():
        monkeypatch.setenv(var, str(value))
    ensure_dagster_home()
    me = os.getpid()
    with dg.DagsterInstance.get() as instance:
        with launch.code_location(instance, "test") as launcher:
            (server,) = _descendants(me)  # the code server, nothing else yet
            run = launcher.run(base_job.name)  # scores its rollouts in verifier worker processes
            assert run.remote_job_origin.location_name == "orchestration.definitions"  # shown under its job
            assert run.job_name == base_job.name and run.tags[launch.LAUNCHED_BY] == "test"
            assert set(launcher.step_seconds(run.run_id)) >= {"base_rollouts", "base_scores"}

            deadline = time.monotonic() + 30
            while len(left := _descendants(me)) > 2 and time.monotonic() < deadline:  # the run's process exits
                time.sleep(0.5)
            tracker = {p: c for p, c in left.items() if p != server}
            assert len(tracker) == 1 and "resource_tracker" in next(iter(tracker.values())), left
            assert _descendants(server) == tracker  # the server's, not the run's
        deadline = time.monotonic() + 60
        while _descendants(me) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _descendants(me) == {}
