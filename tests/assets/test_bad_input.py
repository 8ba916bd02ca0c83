"""A checkpoint whose tokenizer is not the base's fails its run with one clear error, and nothing
already in the lake is touched."""

import shutil

import dagster as dg
import pytest
from transformers import AutoTokenizer

from compute import lake as lakeio
from tests.conftest import materialise_all, study_settings


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
