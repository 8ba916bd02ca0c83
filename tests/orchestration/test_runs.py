"""The demo's and the study's runs: created from the code location as the UI creates its runs (so they show
under their jobs), executed in this process, their step timings read back; every process a run starts (the
verifier's workers) ends with it."""

import os
import signal
import sys
import time

import dagster as dg
import duckdb
import pytest

from orchestration.app import runs
from orchestration.app.location import CODE_LOCATION
from orchestration.app.demo import ensure_dagster_home
from orchestration.automation.jobs import base_job
from tests.procs import descendants

pytestmark = pytest.mark.slow


def test_a_run_is_recorded_under_its_job_and_leaves_no_process_behind(small_world, tmp_path, monkeypatch):
    for var, value in {"DAGSTER_HOME": tmp_path / "dagster", "LAKE_URL": tmp_path / "lake",
                       "BASE_MODEL": small_world / "base", "CHECKPOINTS_URL": small_world / "checkpoints",
                       "PROBLEMS_URL": small_world / "problems.jsonl"}.items():
        monkeypatch.setenv(var, str(value))
    ensure_dagster_home()
    before = descendants(os.getpid())
    with dg.DagsterInstance.get() as instance, runs.code_location(instance, "test") as runner:
        run = runner.run(base_job.name)  # scores its rollouts in verifier worker processes
        assert run.job_name == base_job.name and run.tags[runs.LAUNCHED_BY] == "test"
        origin = run.remote_job_origin.repository_origin
        assert (origin.code_location_origin.location_name, origin.repository_name) == (
            "orchestration.definitions", "__repository__")  # what the UI groups runs by
        assert set(runner.step_seconds(run.run_id)) >= {"base_rollouts", "base_scores"}
        assert descendants(os.getpid()) == before
        assert runner.output.read_text().count("STEP_SUCCESS") >= 4  # the run's console output, in its file


def test_the_runs_console_output_keeps_the_last_lines_of_each_capture(tmp_path):
    """Dagster copies a run's captured output to the console with `tail -F`, stopped when the capture ends; stopped
    at once, the last lines often went missing (a one-line capture: 3 of 30 idle, 16 of 30 under load)."""
    from dagster._core.execution.compute_logs import mirror_stream_to_file

    out = tmp_path / "output.log"
    with runs._output_to(out):
        for i in range(8):
            with mirror_stream_to_file(sys.stderr, str(tmp_path / f"capture-{i}.err")):
                print(f"line {i}", file=sys.stderr, flush=True)
    assert out.read_text().splitlines() == [f"line {i}" for i in range(8)]


def test_a_code_location_that_does_not_load_is_one_message(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("SHIFTLAKE_SENSOR_INTERVAL_S", "often")  # read by the location when it loads
    monkeypatch.delitem(sys.modules, CODE_LOCATION, raising=False)  # loaded again, as in a fresh process
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance, pytest.raises(runs.StudyFailed) as failed:
        with runs.code_location(instance, "test"):
            pass
    assert str(failed.value).startswith("the code location orchestration.definitions did not load: ")
    assert "SHIFTLAKE_SENSOR_INTERVAL_S" in str(failed.value)
    assert "in from_env" in failed.value.log.read_text()  # the stack, for whoever needs it


def _ctrl_c_then_wait(x):
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while DuckDB runs Python inside a query
    time.sleep(5)
    return x


@dg.asset
def _queried():
    con = duckdb.connect()
    con.create_function("ctrl_c", _ctrl_c_then_wait, ["BIGINT"], "BIGINT")
    return con.sql("select ctrl_c(1)").fetchall()


def test_ctrl_c_inside_native_code_is_known_as_an_interrupt_however_the_step_failed():
    """Dagster raises Ctrl-C in a step where Python runs at that moment; inside DuckDB, DuckDB re-raises it as
    its own error ('Query interrupted', or a UDF's 'Python exception occurred'), so the step fails as a user
    error. CI once printed that error for a Ctrl-C instead of 'interrupted' (exit 1, not 130)."""
    with dg.DagsterInstance.ephemeral() as instance:
        with runs.signals_seen() as seen:
            result = dg.materialize([_queried], instance=instance, raise_on_error=False)
        failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        error = failure[0].dagster_event.event_specific_data.error
        assert error.cause.cls_name in {"InvalidInputException", "RuntimeError"}  # not an interrupt, to Dagster
        assert signal.SIGINT in seen
        with runs.signals_seen() as quiet:
            assert dg.materialize([_other], instance=instance).success
        assert not quiet


@dg.asset
def _other():
    return 1
