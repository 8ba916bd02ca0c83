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


@pytest.mark.parametrize("queued, setting, inside", [(1, "", 4), (2, "", 2), (3, "", 1), (4, "3", 3)])
def test_a_run_takes_its_share_of_the_cores_and_gives_it_back(queued, setting, inside, monkeypatch):
    import torch

    from compute import sizing

    seen = []

    @dg.op
    def threads(study: StudyResource):
        seen.append(torch.get_num_threads())

    @dg.job
    def job():
        threads()

    monkeypatch.setenv("SHIFTLAKE_TORCH_THREADS", setting)
    monkeypatch.setattr(sizing, "_DEFAULT_THREADS", [4])  # as if torch's default were 4 threads
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with dg.instance_for_test(overrides={"run_queue": {"max_concurrent_runs": queued}}) as instance:
            result = job.execute_in_process(instance=instance, resources={"study": StudyResource()})
            said = [e.user_message for e in instance.all_logs(result.run_id) if "torch threads in" in e.user_message]
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    assert result.success and seen == [inside] and after == 4
    why = ("SHIFTLAKE_TORCH_THREADS=3" if setting
           else f"the cores shared among the {queued} runs the run queue runs at once")
    assert said == ([] if inside == 4 else [f"torch threads in this run: {inside} ({why})"])
