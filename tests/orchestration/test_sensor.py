"""The checkpoint sensor with `build_sensor_context`: new, half-written, renamed and deleted checkpoints,
markers, the cursor round trip, and run keys that make a replayed tick harmless."""

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource
from orchestration.automation.instance import LastRun
from orchestration.automation.sensors import Candidate, checkpoint_sensor, plan_tick

SENSOR = checkpoint_sensor(interval_s=30)


@pytest.fixture
def watched(small_world, tmp_path) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copytree(small_world / "checkpoints" / "checkpoint-2", folder / "checkpoint-2")
    return folder


def _tick(instance, watched: Path, world: Path, cursor: str | None, sft: Path | None = None):
    study = StudyResource(checkpoints_url=str(watched), base_model=str(world / "base"),
                          sft_checkpoints_url=str(sft) if sft else None)
    # as a context manager: it closes what it opened (left open, Dagster's current-instance state outlives
    # the instance and breaks later runs in the same process)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"study": study}) as context:
        return SENSOR(context)


def _apply(instance, result) -> None:
    """What the daemon does with a tick's result: register the partitions it asks for."""
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def test_a_new_checkpoint_is_registered_and_run_once_its_files_are_stable(small_world, watched):
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, watched, small_world, None)
        assert first.run_requests == [] and first.dynamic_partitions_requests == []  # first seen: wait a tick
        second = _tick(instance, watched, small_world, first.cursor)
        assert [r.partition_key for r in second.run_requests if r.partition_key] == ["rl-step-000002"]
        assert second.dynamic_partitions_requests[0].partition_keys == ["rl-step-000002"]
        # nothing of the base exists in this instance yet: its job is requested first, once
        assert [r.job_name for r in second.run_requests] == ["base_job", "checkpoint_job"]
        assert second.run_requests[1].run_key.startswith("rl-step-000002@")
        _apply(instance, second)
        assert instance.get_dynamic_partitions(checkpoints_partitions.name) == ["rl-step-000002"]
        third = _tick(instance, watched, small_world, second.cursor)
        assert third.run_requests == [] and third.dynamic_partitions_requests == []  # nothing twice
        # a replayed tick (the daemon died before storing the cursor) asks again with the same run key,
        # which Dagster does not launch twice
        replay = _tick(instance, watched, small_world, first.cursor)
        assert [r.run_key for r in replay.run_requests] == [r.run_key for r in second.run_requests]


def test_an_sft_runs_checkpoints_are_found_in_their_folder_and_by_name(small_world, watched, tmp_path):
    sft = tmp_path / "sft-run"
    shutil.copytree(small_world / "checkpoints" / "checkpoint-2", sft / "checkpoint-2")
    shutil.copytree(small_world / "checkpoints" / "checkpoint-4", watched / "sft-checkpoint-4")  # the naming rule
    for folder in (watched / "checkpoint-2", sft / "checkpoint-2", watched / "sft-checkpoint-4"):
        (folder / "COMPLETE").touch()
    with dg.DagsterInstance.ephemeral() as instance:
        result = _tick(instance, watched, small_world, None, sft=sft)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == [
            "rl-step-000002", "sft-step-000002", "sft-step-000004"]
        assert result.dynamic_partitions_requests[0].partition_keys == [
            "rl-step-000002", "sft-step-000002", "sft-step-000004"]


def test_half_written_checkpoints_wait_and_are_picked_up_later(small_world, watched):
    shutil.copytree(small_world / "checkpoints" / "checkpoint-4", watched / "checkpoint-4")
    weights = watched / "checkpoint-4" / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])  # the trainer is still writing
    with dg.DagsterInstance.ephemeral() as instance:
        cursor = _tick(instance, watched, small_world, None).cursor
        result = _tick(instance, watched, small_world, cursor)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == ["rl-step-000002"]
        weights.write_bytes(whole)  # done writing: seen once, then taken on the tick after
        result = _tick(instance, watched, small_world, result.cursor)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == []
        result = _tick(instance, watched, small_world, result.cursor)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == ["rl-step-000004"]


def test_a_marker_file_makes_a_checkpoint_count_at_once(small_world, watched):
    (watched / "checkpoint-2" / "COMPLETE").touch()
    with dg.DagsterInstance.ephemeral() as instance:
        result = _tick(instance, watched, small_world, None)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == ["rl-step-000002"]


def test_renamed_and_deleted_checkpoints(small_world, watched):
    with dg.DagsterInstance.ephemeral() as instance:
        cursor = _tick(instance, watched, small_world, None).cursor
        result = _tick(instance, watched, small_world, cursor)
        _apply(instance, result)
        (watched / "checkpoint-2").rename(watched / "my best run")  # renamed: a new, sanitised key
        result = _tick(instance, watched, small_world, result.cursor)
        result = _tick(instance, watched, small_world, result.cursor)
        assert [r.partition_key for r in result.run_requests if r.partition_key] == ["rl-my-best-run"]
        _apply(instance, result)
        shutil.rmtree(watched / "my best run")  # deleted: partitions and their data are kept
        result = _tick(instance, watched, small_world, result.cursor)
        assert result.run_requests == [] and result.dynamic_partitions_requests == []
        assert sorted(instance.get_dynamic_partitions(checkpoints_partitions.name)) == ["rl-my-best-run",
                                                                                        "rl-step-000002"]


def test_a_partition_added_by_hand_with_no_checkpoint_behind_it_is_removed(small_world, watched):
    """The Materialize dialog lets a user add a `checkpoints` partition: a typo becomes a partition whose runs
    fail. The sensor owns the set: it removes a key no folder ever backed, and keeps one whose folder is gone
    after the sensor requested it (its data, if any, stays queryable)."""
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(checkpoints_partitions.name, ["rl-step-00002"])  # a typo
        first = _tick(instance, watched, small_world, None)
        [removal] = first.dynamic_partitions_requests
        assert isinstance(removal, dg.DeleteDynamicPartitionsRequest) and removal.partition_keys == ["rl-step-00002"]
        instance.delete_dynamic_partition(checkpoints_partitions.name, "rl-step-00002")
        second = _tick(instance, watched, small_world, first.cursor)
        _apply(instance, second)  # the real one, requested by the sensor
        shutil.rmtree(watched / "checkpoint-2")
        third = _tick(instance, watched, small_world, second.cursor)
        assert third.dynamic_partitions_requests == []
        assert instance.get_dynamic_partitions(checkpoints_partitions.name) == ["rl-step-000002"]
    plan = plan_tick([], {}, {"typo", "analysed", "has-row"}, {"analysed"}, with_rows={"has-row"})
    assert plan.removed == ["typo"]
    assert plan_tick([], {}, {"typo"}, set(), {"typo": LastRun("running")}).removed == []  # not under a run


def test_plan_tick_cursor_round_trip():
    """The cursor is plain JSON: a plan made from the decoded cursor equals one made from the original."""
    candidates = [Candidate("rl-step-000010", "aa", None), Candidate("rl-step-000020", "bb", None),
                  Candidate("rl-step-000030", "cc", "weight shard model-00002-of-00002.safetensors missing")]
    first = plan_tick(candidates, {}, set(), set())
    assert first.runs == [] and first.waiting["rl-step-000010"] == "first seen"
    cursor = json.loads(json.dumps(first.cursor))
    assert plan_tick(candidates, cursor, set(), set()) == plan_tick(candidates, first.cursor, set(), set())
    second = plan_tick(candidates, cursor, set(), {"rl-step-000020"})  # 20 was analysed before
    assert second.new_partitions == ["rl-step-000010", "rl-step-000020"]
    assert second.runs == [("rl-step-000010", "rl-step-000010@aa")]
    assert second.waiting == {"rl-step-000030": "weight shard model-00002-of-00002.safetensors missing"}
    changed = plan_tick([Candidate("rl-step-000010", "zz", None)], second.cursor, {"rl-step-000010"}, set())
    assert changed.runs == [] and changed.waiting == {"rl-step-000010": "files changed since the previous tick"}
    assert changed.deleted == ["rl-step-000020", "rl-step-000030"]


def test_a_failed_partition_is_retried_when_its_cause_may_have_changed_else_with_backoff():
    """A run that failed (a wrong BASE_MODEL, say) used to leave its partition unanalysed for ever: the
    cursor remembered it as requested. Now it is retried at once when the settings, code versions or files
    change, else after a backoff; and while it waits it is reported as failed."""
    from orchestration.automation.instance import LastRun
    from orchestration.automation.sensors import retry_after_s

    c = Candidate("rl-step-000010", "aa", None, marker=True)
    first = plan_tick([c], {}, set(), set(), {}, cause="s1", now=1000.0)
    assert first.runs == [("rl-step-000010", "rl-step-000010@aa")]
    running = plan_tick([c], first.cursor, {"rl-step-000010"}, set(), {"rl-step-000010": LastRun("running")},
                        cause="s1", now=1010.0)
    assert running.runs == [] and running.failed == {}
    failed = {"rl-step-000010": LastRun("failed", ended_at=1100.0, error="base_model: no base model at /x")}
    waits = plan_tick([c], first.cursor, {"rl-step-000010"}, set(), failed, cause="s1", now=1110.0)
    assert waits.runs == [] and "no base model at /x" in waits.failed["rl-step-000010"]
    assert "try 2 in 50 s" in waits.failed["rl-step-000010"]
    fixed = plan_tick([c], waits.cursor, {"rl-step-000010"}, set(), failed, cause="s2", now=1111.0)  # settings fixed
    assert fixed.runs == [("rl-step-000010", "rl-step-000010@aa#2")] and fixed.failed == {}
    later = plan_tick([c], first.cursor, {"rl-step-000010"}, set(), failed, cause="s1",
                      now=1100.0 + retry_after_s(1))  # nothing changed: after the backoff
    assert later.runs == [("rl-step-000010", "rl-step-000010@aa#2")]
    assert retry_after_s(2) == 120 and retry_after_s(30) == 3600
    new_files = plan_tick([Candidate("rl-step-000010", "bb", None, marker=True)], first.cursor,
                          {"rl-step-000010"}, set(), failed, cause="s1", now=1110.0)
    assert new_files.runs == [("rl-step-000010", "rl-step-000010@bb#2")]
    done = plan_tick([c], fixed.cursor, {"rl-step-000010"}, {"rl-step-000010"}, failed, cause="s2", now=1200.0)
    assert done.runs == [] and done.failed == {}  # analysed since: nothing to retry


def test_the_sensor_retries_a_partition_whose_run_failed_once_the_setting_is_fixed(small_world, watched, tmp_path):
    """End to end with a real failed `checkpoint_job` run in the instance: the wrong BASE_MODEL is fixed,
    and the next tick requests the partition again instead of saying there is nothing new."""
    from orchestration.definitions import defs
    from orchestration.wiring.resources import StudyResource

    (watched / "checkpoint-2" / "COMPLETE").touch()
    wrong = StudyResource(checkpoints_url=str(watched), base_model=str(tmp_path / "no-such-base"))
    with dg.DagsterInstance.ephemeral() as instance:
        with dg.build_sensor_context(instance=instance, resources={"study": wrong},
                                     repository_def=defs.get_repository_def()) as context:
            first = SENSOR(context)
        _apply(instance, first)
        request = next(r for r in first.run_requests if r.partition_key)
        job = defs.resolve_job_def("checkpoint_job")
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key, raise_on_error=False,
                                        resources={"study": wrong, "io_manager": defs.resources["io_manager"].__class__(
                                            lake_url=str(tmp_path / "lake"))}, tags={"dagster/partition": request.partition_key})
        assert not result.success
        with dg.build_sensor_context(instance=instance, cursor=first.cursor, resources={"study": wrong},
                                     repository_def=defs.get_repository_def()) as context:
            again = SENSOR(context)
        assert again.run_requests == [] and "failed, awaiting retry: rl-step-000002" in again.skip_reason.skip_message
        # `shiftlake status` tells the same: failed, with the step and the first line of its error; a half-written
        # checkpoint beside it waits, saying why
        from compute.settings import Settings
        from orchestration.app.status import checkpoint_status
        from orchestration.automation.staleness import asset_specs

        shutil.copytree(small_world / "checkpoints" / "checkpoint-4", watched / "checkpoint-4")
        (watched / "checkpoint-4" / "tokenizer.json").unlink()
        status = {s.key: s for s in checkpoint_status(instance, Settings(checkpoints_url=str(watched)),
                                                     asset_specs(defs.get_repository_def()))}
        assert status["rl-step-000002"].state == "failed"
        assert status["rl-step-000002"].detail.startswith("checkpoints: FileNotFoundError")
        assert (status["rl-step-000004"].state, status["rl-step-000004"].detail) == ("waiting", "tokenizer files missing")
        # an SFT checkpoint's partition with SFT_CHECKPOINTS_URL unset: its folder is not looked for, and it says so
        instance.add_dynamic_partitions(checkpoints_partitions.name, ["sft-step-000006"])
        specs = asset_specs(defs.get_repository_def())
        unset = {s.key: s for s in checkpoint_status(instance, Settings(checkpoints_url=str(watched)), specs)}
        assert unset["sft-step-000006"].detail == ("registered, never analysed: SFT_CHECKPOINTS_URL unset, so its "
                                                   "folder is not looked for")
        watched_too = Settings(checkpoints_url=str(watched), sft_checkpoints_url=str(tmp_path / "sft"))
        assert {s.key: s for s in checkpoint_status(instance, watched_too, specs)}["sft-step-000006"].detail == (
            "registered, never analysed: folder gone")
        fixed = StudyResource(checkpoints_url=str(watched), base_model=str(small_world / "base"))
        with dg.build_sensor_context(instance=instance, cursor=again.cursor, resources={"study": fixed},
                                     repository_def=defs.get_repository_def()) as context:
            retried = SENSOR(context)
        assert [r.run_key for r in retried.run_requests if r.partition_key] == [f"{request.run_key}#2"]


def test_the_declared_interval_is_due_at_the_daemons_next_look():
    """Dagster's daemon looks at sensors every MIN_INTERVAL_LOOP_TIME seconds and ticks those whose interval has
    passed since their last tick began, a moment after the look before: declared at the loop's own period, the
    sensor was due just after each look and ticked every other one (10 s apart at 5 s; a checkpoint waited 19 s
    for its two ticks)."""
    from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME as loop

    from orchestration.automation.sensors import tick_interval, trend_automation

    assert tick_interval(loop) < loop and tick_interval(1) == 1
    assert checkpoint_sensor(interval_s=loop).minimum_interval_seconds == tick_interval(loop)
    assert trend_automation(interval_s=30).minimum_interval_seconds == tick_interval(30)
