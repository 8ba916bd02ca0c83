"""Runs of the code location's jobs, recorded as the UI and the sensor record theirs: each run is created from
the code location `orchestration.definitions` (its job, its execution plan, its origin, as `dagster job launch`
creates one), so the UI's Overview, job pages and run history show the demo's and the study's runs under
their jobs beside the sensor's and the UI's. They execute here, one after another, in this process: what the
first run imports and warms (torch, transformers, the verifier) serves the next; launched through the run
launcher instead, each in a fresh process, the toy-world demo took 299 s instead of 171 s.

The runs' own console output goes to a file; the event log, which the UI shows, holds the rest. A failed
run is one message (`StudyFailed`): the first failed step's own error, its stacks in a file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._cli.job import _create_run
from dagster._core.events import RunFailureReason
from dagster._core.execution.api import execute_run
from dagster._core.execution.plan.objects import ErrorSource
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import PARTITION_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.error import serializable_error_info_from_exc_info

from compute.paths import REPO_ROOT, dagster_home
from orchestration.app.location import CODE_LOCATION

LAUNCHED_BY = "shiftlake/launched_by"  # run tag: which command launched it (the UI's runs carry dagster/from_ui)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: `str()` says when and names the run, which is marked canceled (Dagster records an
    interrupt nobody asked for through the UI as a failure), or which succeeded where the signal came as it ended:
    Dagster then finishes the run as if none had come, and the command would have gone on to the next one."""


class StudyFailed(Exception):
    """A run of the study failed: `str()` is the cause once (what, where, the fix), `log` the full record."""

    def __init__(self, message: str, log: Path):
        super().__init__(message)
        self.log = log


def log_dir() -> Path:
    return dagster_home() / "failures"


TAIL_WAIT = "DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH"
TAIL_WAIT_S = "0.25"  # per run: the toy-world demo's 10 runs wait 2.5 s in all


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Inside the block, what is written to stdout and stderr goes to `path`: through `sys.stdout` and
    `sys.stderr` (Dagster's console logger, progress bars) and through file descriptors 1 and 2 (native code,
    child processes).

    While a run captures its logs (the UI's stdout and stderr views), Dagster sends them into capture files and
    copies those to this output with `tail -F`, which it stops when the capture ends. Stopped at once, tail had
    often not yet copied the last lines: of 30 one-line captures, 3 lines went missing on an idle machine, 16
    beside two busy processes; with a wait of 0.1 s or more, none. So it waits `TAIL_WAIT_S`, unless
    DAGSTER_COMPUTE_LOG_TAIL_WAIT_AFTER_FINISH says otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    wait = os.environ.get(TAIL_WAIT)
    os.environ[TAIL_WAIT] = wait or TAIL_WAIT_S
    with open(path, "a", buffering=1) as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if wait is None:
                del os.environ[TAIL_WAIT]
            else:
                os.environ[TAIL_WAIT] = wait


class Runner:
    """Create runs of the code location's jobs on `instance` and execute them; see `code_location()`."""

    def __init__(self, instance: dg.DagsterInstance, location, by: str, output: Path):
        self.instance, self.location, self.by, self.output = instance, location, by, output
        (self.repo,) = location.get_repositories().values()

    def run(self, job_name: str, partition_key: str | None = None) -> dg.DagsterRun:
        """Create a run of `job_name` (for one partition) as `dagster job launch` does, execute it here and
        return it finished. A failed run raises `StudyFailed`."""
        tags = {LAUNCHED_BY: self.by} | ({PARTITION_NAME_TAG: partition_key} if partition_key else {})
        run = _create_run(instance=self.instance, code_location=self.location, remote_repo=self.repo,
                          remote_job=self.repo.get_full_job(job_name), run_config={}, tags=tags, op_selection=None,
                          run_id=None)
        with _output_to(self.output), signals_seen() as signals:
            execute_run(self.location.get_reconstructable_job(self.repo.name, job_name), run, self.instance)
        run = self.instance.get_run_by_id(run.run_id)
        stopped = bool(signals & {signal.SIGINT, signal.SIGTERM})
        if run.status != dg.DagsterRunStatus.SUCCESS:
            if stopped or _interrupted(self.instance, run):
                self.instance.report_run_canceled(run, f"Interrupted (Ctrl-C) in the command that ran it ({self.by}).")
                raise Interrupted(f"during {_where(run)} (run {run.run_id[:8]}, now marked canceled)")
            raise failure(self.instance, run, self.output)
        if stopped:  # Dagster took the signal after the last step's code had run and finished the run: stop here
            raise Interrupted(f"as {_where(run)} ended (run {run.run_id[:8]}, which succeeded)")
        return run

    def step_seconds(self, run_id: str) -> dict[str, float]:
        """Seconds each step of a finished run took, by step (asset) name."""
        events = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        return {e.dagster_event.step_key: e.dagster_event.event_specific_data.duration_ms / 1000 for e in events}


@contextlib.contextmanager
def code_location(instance: dg.DagsterInstance, by: str) -> Iterator[Runner]:
    """The code location, loaded here from the current environment, and a `Runner` for its jobs whose runs
    are tagged `by`; their console output goes to a file under DAGSTER_HOME. A location that does not load
    raises `StudyFailed` with its error."""
    output = dagster_home() / "logs" / f"{by}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=CODE_LOCATION,
                             working_directory=str(REPO_ROOT)), location_name=CODE_LOCATION)
    try:
        location = origin.create_location(instance)
    except Exception:  # the definitions module raised while loading
        error = serializable_error_info_from_exc_info(sys.exc_info())
        raise StudyFailed(f"the code location {CODE_LOCATION} did not load: {_cause(error)}",
                          _write_log(f"{by}-location-{int(time.time())}", error.to_string())) from None
    with location:
        yield Runner(instance, location, by, output)


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


@contextlib.contextmanager
def signals_seen() -> Iterator[set[int]]:
    """The signals this process received inside the block, whatever Python did with them. Dagster raises
    Ctrl-C inside a step as `DagsterExecutionInterruptedError` wherever Python runs at that moment; inside
    native code that calls back into Python, the library may turn it into its own error (DuckDB: "Query
    interrupted", or a UDF's "Python exception occurred"), and the step fails as if its code had. The
    interpreter writes each signal's number to the wakeup fd before any handler runs, so the run is known
    to have been interrupted however its step failed. Off the main thread no signal arrives: the set stays
    empty."""
    seen: set[int] = set()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(read, 512):
                seen.update(chunk)
        os.close(read)
        os.close(write)


def _interrupted(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Did the run end because this process was interrupted (SIGINT, SIGTERM) rather than by an error?"""
    failed = instance.all_logs(run.run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE})
    for record in failed:
        data = record.dagster_event.event_specific_data
        if getattr(data, "error_source", None) == ErrorSource.INTERRUPT or (
                getattr(data, "failure_reason", None) == RunFailureReason.UNEXPECTED_TERMINATION):
            return True
    return False


def _where(run: dg.DagsterRun) -> str:
    partition = run.tags.get(PARTITION_NAME_TAG)
    return f"{run.job_name}{f'[{partition}]' if partition else ''}"


def failure(instance: dg.DagsterInstance, run: dg.DagsterRun, output: Path) -> StudyFailed:
    """The first failed step's own error, once, and every failed step's full stack in a file (or, when the run
    failed outside its steps, the run's own error and the path of the runs' console output)."""
    where = _where(run)
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
                       _write_log(run.run_id, f"{text}\n\nthe runs' console output: {output}"))
