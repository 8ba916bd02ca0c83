"""Checkpoints on S3: discovered, checked for completeness and fetched once into the local cache by the
same code as local folders; a study run from them writes the same tables as one from local folders."""

import shutil
import uuid

import dagster as dg
import pytest

from compute import lake as lakeio
from compute import storage
from compute.checkpoints import discover_checkpoints, incomplete_reason
from compute.listing import listing_fingerprint
from compute.models import content_hash, load_model
from orchestration.automation.sensors import scan
from tests.conftest import materialise_all, study_settings


@pytest.fixture
def s3_world(s3_server, small_world, tmp_path, monkeypatch) -> str:
    """The small world's checkpoints uploaded under a fresh S3 prefix; a private model cache."""
    monkeypatch.setenv("SHIFTLAKE_CACHE", str(tmp_path / "cache"))
    prefix = f"s3://shiftlake/checkpoints-{uuid.uuid4().hex[:8]}"
    fs = storage.filesystem(prefix)
    for name in ("checkpoint-2", "checkpoint-4"):
        fs.put(str(small_world / "checkpoints" / name), f"{prefix}/{name}", recursive=True)
    return prefix


def test_discovery_completeness_and_a_single_fetch(s3_world, small_world, tmp_path):
    found = discover_checkpoints(s3_world)
    assert [(c.key, c.step) for c in found] == [("rl-step-000002", 2), ("rl-step-000004", 4)]
    assert all(c.uri.startswith("s3://") and incomplete_reason(c.uri) is None for c in found)
    assert [c.incomplete for c in scan(s3_world)] == [None, None]
    model = load_model(found[0].uri)
    cached = list((tmp_path / "cache" / "models").iterdir())
    assert len(cached) == 1 and content_hash(found[0].uri) == content_hash(small_world / "checkpoints" / "checkpoint-2")
    assert model.tokenizer.get_vocab() == load_model(small_world / "checkpoints" / "checkpoint-2").tokenizer.get_vocab()
    stamp = (cached[0] / ".fetched").stat().st_mtime_ns
    load_model(found[0].uri)  # unchanged listing: no second download
    assert (cached[0] / ".fetched").stat().st_mtime_ns == stamp and len(list(cached[0].parent.iterdir())) == 1


def test_a_handle_fetches_the_tokenizer_and_configs_but_no_weights(s3_world, small_world, tmp_path):
    """What a step that sends its model work to Ray holds (`compute.models.load_handle`): no weight is downloaded."""
    from compute.models import load_handle

    handle = load_handle(f"{s3_world}/checkpoint-4")
    [cached] = (tmp_path / "cache" / "models").iterdir()
    assert handle.model is None and handle.uri == f"{s3_world}/checkpoint-4" and handle.path == str(cached)
    assert not list(cached.rglob("*.safetensors")) and (cached / "config.json").exists()
    local = small_world / "checkpoints" / "checkpoint-4"
    assert handle.tokenizer.get_vocab() == load_handle(local).tokenizer.get_vocab()
    assert {p.name for p in cached.iterdir()} == {p.name for p in local.iterdir()
                                                   if not p.name.endswith(".safetensors")} | {".fetched"}


def test_a_half_uploaded_checkpoint_is_incomplete(s3_world, small_world):
    fs = storage.filesystem(s3_world)
    weights = (small_world / "checkpoints" / "checkpoint-4" / "model.safetensors").read_bytes()
    fs.pipe(f"{s3_world}/checkpoint-4/model.safetensors", weights[: len(weights) // 3])
    before = listing_fingerprint(f"{s3_world}/checkpoint-4")
    assert incomplete_reason(f"{s3_world}/checkpoint-4") == "weight shard model.safetensors truncated or unreadable"
    fs.pipe(f"{s3_world}/checkpoint-4/model.safetensors", weights)
    assert incomplete_reason(f"{s3_world}/checkpoint-4") is None
    assert listing_fingerprint(f"{s3_world}/checkpoint-4") != before


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_a_study_from_s3_checkpoints_matches_one_from_local_folders(s3_world, small_world, lake, tmp_path):
    local_url, keys = lake
    world = tmp_path / "world"  # the base and problems stay local; the checkpoints come from S3
    world.mkdir()
    shutil.copytree(small_world / "base", world / "base")
    shutil.copy(small_world / "problems.jsonl", world / "problems.jsonl")
    settings = study_settings(world, tmp_path / "lake", checkpoints_url=s3_world, base_model=str(small_world / "base"))
    with dg.DagsterInstance.ephemeral() as instance:
        assert materialise_all(settings, instance) == keys
    for table in ("rollouts", "token_shifts", "cross_samples"):
        got = lakeio.read_partition(settings.lake_url, table, f"checkpoint={keys[-1]}")
        assert got.equals(lakeio.read_partition(local_url, table, f"checkpoint={keys[-1]}")), table
    row = lakeio.read_partition(settings.lake_url, "checkpoints", f"checkpoint={keys[-1]}")
    assert row["uri"][0].startswith("s3://") and row["content_hash"][0] == content_hash(
        small_world / "checkpoints" / "checkpoint-4")
