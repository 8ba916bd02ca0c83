"""Data and code versions: changed checkpoint bytes make exactly that checkpoint's partitions stale, a new
metrics code version exactly the metrics assets of every partition; the reanalysis schedule asks for
those and nothing else, and after its runs nothing is stale."""

import dataclasses
import datetime as dt
import shutil

import dagster as dg
import pytest

from compute import lake as lakeio
from orchestration.definitions import defs
from orchestration.wiring.resources import StudyResource
from orchestration.automation.schedules import reanalysis_schedule
from orchestration.automation.staleness import asset_specs, find_stale
from tests.conftest import CHECKPOINT_ASSETS, materialise, materialise_all, study_settings

JOB_ASSETS = set(CHECKPOINT_ASSETS)
SCHEDULE = reanalysis_schedule("0 3 * * *")


@pytest.fixture(scope="module")
def _analysed_once(small_world, tmp_path_factory):
    """A private copy of the small world fully analysed into a lake, on a persistent instance (schedules are
    evaluated against a stored instance); its folder (world, lake, instance) and a snapshot of it."""
    work = tmp_path_factory.mktemp("staleness") / "work"
    shutil.copytree(small_world, work / "world")
    settings = study_settings(work / "world", work / "lake")
    (work / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
        keys = materialise_all(settings, instance)
    snapshot = work.with_name("snapshot")
    shutil.copytree(work, snapshot)
    return work, snapshot, settings, keys


@pytest.fixture
def analysed(_analysed_once):
    """The analysed world, lake and instance as they were after the analysis (each test changes bytes, code
    versions or runs): restored from the snapshot, at the same paths."""
    work, snapshot, settings, keys = _analysed_once
    shutil.rmtree(work)
    shutil.copytree(snapshot, work)
    with dg.instance_for_test(temp_dir=str(work / "dagster")) as instance:
        yield instance, settings, work / "world", keys


def _specs():
    return asset_specs(defs.get_repository_def())


def test_nothing_is_stale_after_a_full_analysis(analysed):
    instance, settings, world, keys = analysed
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons == {}


def _rerun_said(instance, asset: str, partition: str) -> str:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(dg.AssetKey(asset), [partition]), limit=1).records[0]
    return record.asset_materialization.metadata["rerun"].value


def test_rerunning_one_partition_with_identical_data_leaves_nothing_stale(analysed):
    """A rerun of one checkpoint's `token_shifts` that writes the same data: nothing downstream is stale. The
    trend (across every checkpoint) used to compare the latest `summaries` of any partition, by time, and
    reported itself, every report and a partition-less `summaries` stale."""
    instance, settings, world, keys = analysed
    before = lakeio.read_partition(settings.lake_url, "token_shifts", f"checkpoint={keys[0]}")
    assert materialise(settings, instance, ["token_shifts"], keys[0]).success
    assert lakeio.read_partition(settings.lake_url, "token_shifts", f"checkpoint={keys[0]}").equals(before)
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons == {}
    assert _rerun_said(instance, "token_shifts", keys[0]).startswith("unchanged: the same rows as before")
    # the model row over the same weights too: it keeps the time its weights were first discovered
    row = lakeio.read_partition(settings.lake_url, "checkpoints", f"checkpoint={keys[0]}")
    assert materialise(settings, instance, ["checkpoints"], keys[0]).success
    assert _rerun_said(instance, "checkpoints", keys[0]).startswith("unchanged: the same rows as before")
    assert lakeio.read_partition(settings.lake_url, "checkpoints", f"checkpoint={keys[0]}").equals(row)
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons == {}
    # and a summaries partition that really changed shows up where it belongs: in the trend, named
    code_version = {s.key.to_user_string(): s.code_version for s in _specs()}["summaries"]
    instance.report_runless_asset_event(dg.AssetMaterialization("summaries", partition=keys[0], tags={
        "dagster/data_version": "something else", "dagster/code_version": code_version}))
    stale = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons
    assert stale[("trend", None)] == [f"summaries [{keys[0]}] has new data"]
    # a rerun that did change its rows says so, and names the partitions that read them
    other = dataclasses.replace(settings, temperature=0.5)
    assert materialise(other, instance, ["rollouts"], keys[0]).success
    assert _rerun_said(instance, "rollouts", keys[0]) == (
        f"changed: other rows than before; stale until they run again: cross_samples [{keys[0]}], scores [{keys[0]}], "
        f"token_shifts [{keys[0]}]")  # cross_samples: its identity check reads the rollouts


def test_rerunning_each_checkpoints_summaries_with_identical_data_leaves_no_report_stale(analysed):
    """`report` names `summaries` in `deps=` without loading it: Dagster records a pointer to the latest
    `summaries` event of any checkpoint, so a report used to be called stale by time order whenever another
    checkpoint's summaries had been written after the one it read."""
    instance, settings, world, keys = analysed
    for key in keys:
        assert materialise(settings, instance, ["summaries"], key).success
        assert _rerun_said(instance, "summaries", key).startswith("unchanged")
        assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons == {}, key
    # summaries with other data: its own report reads them directly, the other checkpoint's through the trend
    code_version = {s.key.to_user_string(): s.code_version for s in _specs()}["summaries"]
    instance.report_runless_asset_event(dg.AssetMaterialization("summaries", partition=keys[0], tags={
        "dagster/data_version": "something else", "dagster/code_version": code_version}))
    stale = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url)
    assert stale.reasons[("report", keys[0])] == ["summaries has new data", "trend is stale"]
    assert stale.reasons[("report", keys[1])] == ["trend is stale"]


def test_changed_weights_make_only_that_checkpoint_stale_and_the_schedule_reruns_only_it(analysed):
    instance, settings, world, keys = analysed
    weights = world / "checkpoints" / "checkpoint-4" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = bytes(b ^ 0x55 for b in data[-4:])  # one float of the last tensor: same size, other content
    weights.write_bytes(bytes(data))
    stale = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url)
    # that checkpoint's partitions, and through the trend (which reads its summaries) the other's report
    assert set(stale.partitions()) == {"rl-step-000004", "rl-step-000002"}
    assert set(stale.partitions()["rl-step-000004"]) == JOB_ASSETS | {"report"}
    assert stale.partitions()["rl-step-000002"] == ["report"]
    assert set(stale.reasons[("trend", None)]) == {f"{a} [rl-step-000004] is stale"
                                                   for a in ("checkpoints", "summaries", "cross_summaries")}
    assert stale.reasons[("checkpoints", "rl-step-000004")] == ["model files changed"]

    study = StudyResource.from_settings(settings)
    with dg.build_schedule_context(instance=instance, resources={"study": study}, repository_def=defs.get_repository_def(),
                                 scheduled_execution_time=dt.datetime(
            2026, 11, 27, 3, tzinfo=dt.timezone.utc)) as context:
        runs = SCHEDULE(context)
    assert [r.partition_key for r in runs] == ["rl-step-000004"]
    assert {k.to_user_string() for k in runs[0].asset_selection} == JOB_ASSETS
    before = lakeio.read_partition(settings.lake_url, "rollouts", "checkpoint=rl-step-000002")
    _execute(instance, settings, runs)
    # the trend and then the reports (which show the trend) follow by declarative automation, not the schedule
    left = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons
    assert set(left) == {("trend", None), ("report", "rl-step-000004"), ("report", "rl-step-000002")}
    assert left[("report", "rl-step-000002")] == ["trend is stale"]
    assert materialise(settings, instance, ["trend"]).success
    for key in keys:
        assert materialise(settings, instance, ["report"], key).success
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url).reasons == {}
    assert lakeio.read_partition(settings.lake_url, "rollouts", "checkpoint=rl-step-000002").equals(before)


def test_a_new_metrics_code_version_makes_only_the_metrics_and_what_reads_them_stale(analysed):
    instance, settings, world, keys = analysed
    specs = [s.replace_attributes(code_version="next") if s.key.to_user_string() == "token_shifts" else s
             for s in _specs()]
    now = next(s.code_version for s in _specs() if s.key.to_user_string() == "token_shifts")
    stale = find_stale(instance, specs, settings.base_model, settings.checkpoints_url)
    assert set(stale.partitions()) == set(keys)
    for key in keys:
        assert stale.partitions()[key] == ["token_shifts", "advantage_weights", "summaries", "report"]
    assert stale.reasons[("token_shifts", keys[0])] == [f"code version {now} -> next"]
    assert stale.reasons[("summaries", keys[0])] == ["token_shifts is stale"]


def _execute(instance, settings, runs) -> None:
    for run in runs:
        assert materialise(settings, instance, [k.to_user_string() for k in run.asset_selection],
                           run.partition_key).success


def test_another_prompt_template_makes_the_sampled_tables_stale(analysed):
    """The template (and the stop strings) are part of what the rollouts were computed from: configuring
    another one marks the sampling assets of every partition, and what reads them, stale."""
    from compute.prompts import PromptSettings

    instance, settings, world, keys = analysed
    same = PromptSettings.parse("raw", "", "").recorded()
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url, same).reasons == {}
    other = PromptSettings.parse("Question: {problem}\nAnswer:", "", "").recorded()
    stale = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url, other)
    for key in keys:
        assert stale.reasons[("rollouts", key)] == ["prompt_template changed"]
        assert set(stale.reasons[("cross_samples", key)]) == {
            "prompt_template changed", "rollouts is stale", "base_rollouts is stale"}  # its identity check reads them
        assert "rollouts is stale" in stale.reasons[("token_shifts", key)]
    assert stale.reasons[("base_rollouts", None)] == ["prompt_template changed"]


def test_another_advantage_weighting_makes_only_the_advantage_weights_stale(analysed):
    """alpha, s and the divergence are what the advantage_weights were made with: changing one marks that table of
    every partition stale, and nothing else (nothing reads it)."""
    instance, settings, world, keys = analysed
    assert find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url, settings.recorded()).reasons == {}
    other = dataclasses.replace(settings, advantage_alpha=2.0).recorded()
    stale = find_stale(instance, _specs(), settings.base_model, settings.checkpoints_url, other).reasons
    assert stale == {("advantage_weights", key): ["advantage_weighting changed"] for key in keys}
