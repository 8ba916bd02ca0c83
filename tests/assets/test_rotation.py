"""Trainers rotate checkpoints away (`save_total_limit`; OpenRLHF keeps three): an analysed checkpoint must
stay re-analysable from the lake's model store, with the same data version and the same results."""

import shutil

import dagster as dg
import polars as pl

from compute import lake as lakeio
from compute.models import content_hash
from tests.conftest import materialise, study_settings


def test_a_rotated_checkpoint_is_reanalysed_from_the_model_store(small_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(small_world, world, ignore=shutil.ignore_patterns("checkpoint-4", "checkpoint-6"))
    settings = study_settings(world, tmp_path / "lake")
    key = "rl-step-000002"
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("checkpoints", [key])
        assert materialise(settings, instance, ["problems", "base_model", "base_rollouts", "base_scores"]).success
        assert materialise(settings, instance, ["checkpoints", "rollouts"], key).success
        row = lakeio.read_partition(settings.lake_url, "checkpoints", f"checkpoint={key}")
        store = tmp_path / "lake" / "models" / row["content_hash"][0]
        assert row["model_uri"][0] == str(store) and row["layout"][0] == "hf"
        assert content_hash(store) == row["content_hash"][0]  # content-addressed: the copy hashes to its name
        before = lakeio.read_partition(settings.lake_url, "rollouts", f"checkpoint={key}")

        shutil.rmtree(world / "checkpoints" / "checkpoint-2")  # the trainer's save_total_limit at work
        again = materialise(settings, instance, ["checkpoints", "rollouts"], key)
        assert again.success
        event = again.get_asset_materialization_events()[0].materialization
        assert "analysed from the model store" in event.metadata["source"].value
        assert event.tags["dagster/data_version"] == row["content_hash"][0]  # nothing downstream goes stale
        after = lakeio.read_partition(settings.lake_url, "rollouts", f"checkpoint={key}")
        assert after.drop("code_version").equals(before.drop("code_version"))

        # a checkpoint that was never analysed and is gone cannot be: one clear message
        instance.add_dynamic_partitions("checkpoints", ["rl-step-000099"])
        failed = materialise(settings, instance, ["checkpoints"], "rl-step-000099", raise_on_error=False)
        assert not failed.success
        message = str(failed.get_step_failure_events()[0].event_specific_data.error.cause or "")
        message += str(failed.get_step_failure_events()[0].event_specific_data.error.message)
        assert "is not in" in message and "model store has no copy" in message
        assert pl.Series(lakeio.list_partitions(settings.lake_url, "checkpoints")).to_list() == [
            "checkpoint=base", f"checkpoint={key}"]
