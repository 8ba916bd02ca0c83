"""Where the model-bound work goes, as the study resource decides it: a RAY_ADDRESS where nothing listens is one
message at once (ray.init would retry for minutes); the instance's settings follow DAGSTER_PG_URL, and say so."""

from __future__ import annotations

import socket

import dagster as dg
import pytest

from orchestration.app.demo import ensure_dagster_home
from orchestration.wiring.resources import StudyResource


def test_a_ray_address_where_nothing_listens_fails_at_once_with_the_fix():
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    study = StudyResource(ray_address=f"127.0.0.1:{port}")
    with pytest.raises(ConnectionError, match=rf"no Ray cluster answers at RAY_ADDRESS=127.0.0.1:{port}.*unset "
                                              "RAY_ADDRESS to run in this process"):
        study.workers(dg.build_op_context())
    with pytest.raises(ConnectionError, match="ray://nowhere.invalid:10001"):
        StudyResource(ray_address="ray://nowhere.invalid:10001").workers(dg.build_op_context())


def test_without_ray_the_work_stays_in_this_process():
    workers = StudyResource(ray_address="").workers(dg.build_op_context())
    assert workers.pool.workers == 1 and workers.metadata() == {"shard_workers": 0, "shards_rerun": 0}


def test_the_instance_follows_dagster_pg_url_and_keeps_ones_own(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    config = ensure_dagster_home() / "dagster.yaml"
    assert "postgres" not in config.read_text() and not capsys.readouterr().err
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    ensure_dagster_home()
    assert "postgres_url" in config.read_text()
    assert "is now PostgreSQL's" in capsys.readouterr().err
    monkeypatch.delenv("DAGSTER_PG_URL")
    ensure_dagster_home()
    assert "postgres" not in config.read_text() and "is now SQLite's" in capsys.readouterr().err
    config.write_text("telemetry:\n  enabled: false\n")  # one's own: left alone whatever DAGSTER_PG_URL says
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://u:p@127.0.0.1:1/dagster")
    ensure_dagster_home()
    assert config.read_text() == "telemetry:\n  enabled: false\n"


def _run_on_threads(job, queued: int, threads: int, beside, monkeypatch):
    """Run `job` in process on an instance whose queue runs `queued` at once, after `beside(instance)`, with torch
    on `threads` threads and its default taken as 4: (result, the run's thread log lines, threads after)."""
    import torch

    from compute import sizing

    monkeypatch.setattr(sizing, "_DEFAULT_THREADS", [4])  # as if torch's default were 4 threads
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with dg.instance_for_test(overrides={"run_queue": {"max_concurrent_runs": queued}}) as instance:
            beside(instance)
            result = job.execute_in_process(instance=instance, resources={"study": StudyResource()})
            said = [e.user_message for e in instance.all_logs(result.run_id) if "torch threads in" in e.user_message]
        return result, said, torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("queued, others, setting, inside", [
    (4, 0, "", 3),  # alone: torch as it was
    (4, 1, "", 2), (4, 2, "", 1),  # beside 1 or 2 runs going on: the default 4 threads split 2 or 3 ways
    (2, 3, "", 2),  # at most the queue's max_concurrent_runs
    (4, 1, "5", 5)])  # SHIFTLAKE_TORCH_THREADS decides
def test_a_run_takes_its_share_of_the_cores_and_gives_it_back(queued, others, setting, inside, monkeypatch):
    import torch

    seen = []

    @dg.op
    def threads(study: StudyResource):
        seen.append(torch.get_num_threads())

    @dg.job
    def job():
        threads()

    def beside(instance):
        going = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        for status in going[:others]:
            instance.create_run_for_job(job_def=job, status=status)
        instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.SUCCESS)  # over: not counted

    monkeypatch.setenv("SHIFTLAKE_TORCH_THREADS", setting)
    result, said, after = _run_on_threads(job, queued, 3, beside, monkeypatch)  # 3: what a run leaves as it found
    assert result.success and seen == [inside] and after == 3
    why = ("SHIFTLAKE_TORCH_THREADS=5" if setting
           else f"the cores shared among the {min(others + 1, queued)} runs going on")
    assert said == ([] if inside == 3 else [f"torch threads in this run: {inside} ({why})"])


def test_a_runs_share_follows_the_runs_that_start_and_end_beside_it(monkeypatch):
    """Each model-bound step takes the share again (`StudyResource.workers`): a run that began alone gives up
    threads when another starts, and takes them back when it ends."""
    import torch

    seen, other = [], []

    @dg.op
    def first(context, study: StudyResource):
        study.workers(context)
        seen.append(torch.get_num_threads())
        other.append(context.instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.STARTED))

    @dg.op
    def second(context, study: StudyResource, previous):
        study.workers(context)
        seen.append(torch.get_num_threads())
        context.instance.report_run_canceled(other[0])  # the other run ends

    @dg.op
    def third(context, study: StudyResource, previous):
        study.workers(context)
        seen.append(torch.get_num_threads())

    @dg.job
    def job():
        third(second(first()))

    monkeypatch.setenv("SHIFTLAKE_TORCH_THREADS", "")
    result, said, after = _run_on_threads(job, 4, 4, lambda instance: None, monkeypatch)
    assert result.success and seen == [4, 2, 4] and after == 4
    assert said == ["torch threads in this run: 2 (the cores shared among the 2 runs going on)",
                    "torch threads in this run: 4 (alone now)"]


def test_a_sensor_tick_leaves_torch_alone(monkeypatch):
    """The checkpoint sensor and the schedule take the study resource too; outside a run it shares nothing out
    (nor imports torch into the code server)."""
    import torch

    monkeypatch.setenv("SHIFTLAKE_TORCH_THREADS", "5")
    before = torch.get_num_threads()
    with dg.instance_for_test() as instance:
        with dg.build_resources({"study": StudyResource()}, instance=instance) as resources:
            assert resources.study.settings().torch_threads == 5 and torch.get_num_threads() == before
