"""A checkpoint whose tokenizer is not the base's fails its run with one clear error, and nothing
already in the lake is touched."""

import shutil

import dagster as dg
import pytest
from transformers import AutoTokenizer

from compute import lake as lakeio
from tests.conftest import materialise, materialise_all, study_settings


def test_tokenizer_mismatch_fails_the_checkpoint_and_keeps_the_lake(small_world, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(small_world, world)
    bad = world / "checkpoints" / "checkpoint-6"
    shutil.copytree(world / "checkpoints" / "checkpoint-2", bad)
    tok = AutoTokenizer.from_pretrained(bad)
    tok.add_tokens(["<think>"])
    tok.save_pretrained(bad)
    settings = study_settings(world, tmp_path / "lake")
    with dg.DagsterInstance.ephemeral() as instance, pytest.raises(Exception) as caught:
        materialise_all(settings, instance)  # the base and checkpoints 2 and 4 succeed, then 6 fails
    message = str(caught.value)
    assert "tokenizers differ (vocabulary)" in message
    assert str(world / "base") in message and str(bad) in message
    # the good checkpoints were analysed before, and stay whole; the bad one left nothing behind
    assert lakeio.list_partitions(settings.lake_url, "token_shifts") == [
        "checkpoint=rl-step-000002", "checkpoint=rl-step-000004"]
    assert lakeio.list_partitions(settings.lake_url, "checkpoints") == [
        "checkpoint=base", "checkpoint=rl-step-000002", "checkpoint=rl-step-000004"]


def _nan_weights(folder):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with __import__("torch").no_grad():
        model.model.norm.weight[0] = float("nan")
    model.save_pretrained(folder)


def _missing_shard(folder):
    (folder / "model.safetensors.index.json").write_text(
        '{"metadata": {}, "weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}')


def _truncated(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 100])


def _bad_config(folder):
    (folder / "config.json").write_text("{not json")


@pytest.mark.parametrize("corrupt,message,complete", [
    (_missing_shard, "weight shard model-00002-of-00002.safetensors missing", False),
    (_truncated, "weight shard model.safetensors truncated or unreadable", False),
    (_bad_config, "config.json unreadable", False),
    (_nan_weights, "produces NaN/inf logits", True),
])
def test_a_corrupt_checkpoint_fails_clearly_and_keeps_the_lake(small_world, tmp_path, corrupt, message, complete):
    """Each corruption: the `checkpoints` asset fails with one error naming the checkpoint, the problem and
    the fix; the analysed checkpoint's rows stay, and the bad one writes nothing. A checkpoint whose files are
    incomplete is not even registered by the demo or the study (the sensor waits for it); run on its own
    partition, its asset fails the same way."""
    world = tmp_path / "world"
    shutil.copytree(small_world, world)
    shutil.rmtree(world / "checkpoints" / "checkpoint-4")
    bad = world / "checkpoints" / "checkpoint-6"
    shutil.copytree(world / "checkpoints" / "checkpoint-2", bad)
    corrupt(bad)
    settings = study_settings(world, tmp_path / "lake")
    with dg.DagsterInstance.ephemeral() as instance, pytest.raises(Exception) as caught:
        if complete:
            materialise_all(settings, instance)
        else:
            materialise_all(settings, instance)  # checkpoint-6 is not registered: nothing of it runs
            assert instance.get_dynamic_partitions("checkpoints") == ["rl-step-000002"]
            instance.add_dynamic_partitions("checkpoints", ["rl-step-000006"])
            materialise(settings, instance, ["checkpoints"], "rl-step-000006")
    assert message in str(caught.value) and str(bad) in str(caught.value)
    assert lakeio.list_partitions(settings.lake_url, "checkpoints") == ["checkpoint=base", "checkpoint=rl-step-000002"]
    assert lakeio.list_partitions(settings.lake_url, "token_shifts") == ["checkpoint=rl-step-000002"]
