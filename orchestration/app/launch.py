"""Runs of the code location's jobs, launched the way the UI and the sensor launch them: a code server for
`-m orchestration.definitions` (the one `dagster dev` starts) and the instance's run launcher, each run in a
process of its own. Every run is recorded with its job and its code location, so the UI's Overview, job pages
and run history show the demo's and the study's runs beside the sensor's and the UI's.

The code server's and the runs' own output goes to a file; the event log, which the UI shows, holds the rest.
A failed run is one message (`StudyFailed`): the first failed step's own error, its stacks in a file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._cli.job import _create_run
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster.version import __version__ as dagster_version

from compute.paths import REPO_ROOT, dagster_home
from orchestration.app.location import CODE_LOCATION

LAUNCHED_BY = "shiftlake/launched_by"  # run tag: which command launched it (the UI's runs carry dagster/from_ui)


class StudyFailed(Exception):
    """A run of the study failed: `str()` is the cause once (what, where, the fix), `log` the full record."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


def log_dir() -> Path:
    return dagster_home() / "failures"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """File descriptors 1 and 2 point at `path` inside the block (for the processes started there and their
    children), and back after it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class Launcher:
    """Launch runs of the code location's jobs on `instance` and wait for them; see `code_location()`."""

    def __init__(self, instance: dg.DagsterInstance, workspace, by: str, output: Path):
        self.instance, self.workspace, self.by, self.output = instance, workspace, by, output
        self.location = workspace.get_code_location(CODE_LOCATION)
        (self.repo,) = self.location.get_repositories().values()

    def launch(self, job_name: str, partition_key: str | None = None) -> str:
        """Create a run of `job_name` (for one partition) as `dagster job launch` does, and launch it; its id."""
        tags = {LAUNCHED_BY: self.by} | ({PARTITION_NAME_TAG: partition_key} if partition_key else {})
        run = _create_run(instance=self.instance, code_location=self.location, remote_repo=self.repo,
                          remote_job=self.repo.get_full_job(job_name), run_config={}, tags=tags, op_selection=None,
                          run_id=None)
        self.instance.launch_run(run.run_id, self.workspace)
        return run.run_id

    def wait(self, run_ids: list[str], every: float = 0.5) -> list[dg.DagsterRun]:
        """Wait for the runs to end; the finished runs. A failed one raises `StudyFailed`; an interrupted wait
        terminates the runs still going."""
        try:
            while not all((runs := [self.instance.get_run_by_id(r) for r in run_ids])[i].is_finished
                          for i in range(len(run_ids))):
                time.sleep(every)
        except BaseException:
            for run_id in run_ids:
                if not self.instance.get_run_by_id(run_id).is_finished:
                    self.instance.run_launcher.terminate(run_id)
            raise
        for run in runs:
            if run.status != dg.DagsterRunStatus.SUCCESS:
                raise failure(self.instance, run, self.output)
        return runs

    def run(self, job_name: str, partition_key: str | None = None) -> dg.DagsterRun:
        """Launch one run and wait for it."""
        return self.wait([self.launch(job_name, partition_key)])[0]

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """Seconds each step of a finished run took, by step (asset) name."""
        events = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        return {e.dagster_event.step_key: e.dagster_event.event_specific_data.duration_ms / 1000 for e in events}


@contextlib.contextmanager
def code_location(instance: dg.DagsterInstance, by: str) -> Iterator[Launcher]:
    """A code server for the code location (started here, from the current environment, stopped on leaving)
    and a `Launcher` for its jobs; its output and the runs' goes to a file under DAGSTER_HOME. A location
    that does not load raises `StudyFailed` with its error."""
    output = dagster_home() / "logs" / f"{by}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with _output_to(output):  # the server is started inside; its children inherit its output
        context = WorkspaceProcessContext(instance, ModuleTarget(CODE_LOCATION, None, str(REPO_ROOT), None),
                                          version=dagster_version, read_only=False, code_server_log_level="WARNING")
    with context:
        workspace = context.create_request_context()
        error = workspace.get_code_location_error(CODE_LOCATION)
        if error is not None:
            raise StudyFailed(f"the code location {CODE_LOCATION} did not load: {_cause(error)}",
                              _write_log(f"{by}-location", error.to_string()))
        yield Launcher(instance, workspace, by, output)


def _cause(error) -> str:
    """The innermost error under Dagster's wrappers, as one line without its class name repeated."""
    while error.cause is not None and (error.cls_name or "").startswith(("Dagster", "DagsterUser")):
        error = error.cause
    message = error.message.strip()
    return message.split(": ", 1)[1] if message.startswith(f"{error.cls_name}: ") else message


def _write_log(name: str, text: str) -> Path:
    path = log_dir() / f"{name}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def failure(instance: dg.DagsterInstance, run: dg.DagsterRun, output: Path) -> StudyFailed:
    """The first failed step's own error, once, and every failed step's full stack in a file (or, when the run
    failed outside its steps, the run's own error and the path of the code server's output)."""
    partition = run.tags.get(PARTITION_NAME_TAG)
    where = f"{run.job_name}{f'[{partition}]' if partition else ''}"
    failures = [r.dagster_event for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
    blocks = [f"step {e.step_key} of {where} (run {run.run_id}):\n{e.event_specific_data.error.to_string()}"
              for e in failures]
    if failures:
        error = failures[0].event_specific_data.error
        return StudyFailed(f"{failures[0].step_key} failed in {where}: {_cause(error)}",
                           _write_log(run.run_id, "\n\n".join(blocks)))
    events = [r for r in instance.all_logs(run.run_id) if r.dagster_event is not None
              and r.dagster_event.event_type in (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.ENGINE_EVENT)]
    errors = [r.dagster_event.event_specific_data.error for r in events
              if getattr(r.dagster_event.event_specific_data, "error", None) is not None]
    text = "\n\n".join([r.message or "" for r in events] + [e.to_string() for e in errors])
    why = _cause(errors[0]) if errors else f"run {run.status.value.lower()}"
    return StudyFailed(f"{where} failed (run {run.run_id[:8]}): {why}",
                       _write_log(run.run_id, f"{text}\n\ncode server and run output: {output}"))
