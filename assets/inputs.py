"""Inputs of the study: the problems, the base model and each RL checkpoint, as lake tables."""

import warnings
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from assets import checks
from compute import lake
from compute.lake import BASE_PARTITION
from compute.checkpoints import has_weights, not_ready
from compute.listing import listing_fingerprint
from compute.models import (LoadedModel, check_finite_logits, check_same_tokenizer, content_hash, local_copy,
                            model_folder, tokenizer_hash)
from compute.modelstore import model_of, snapshot, stored
from compute.problems import load_problems
from orchestration.wiring import names
from orchestration.wiring.partitions import checkpoints_partitions
from orchestration.wiring.resources import StudyResource, Workers


@dg.asset(code_version="1", group_name=names.INPUTS, kinds={"polars"}, metadata={names.PARTITION: ""},
          check_specs=checks.specs("problems"))
def problems(study: StudyResource):
    """Verifiable problems (dataset, problem_id, prompt, answer) from PROBLEMS_URL."""
    cfg = study.settings()
    yield from checks.output_and_checks("problems", load_problems(cfg.required("problems_url"), cfg.max_problems))


def _model_row(checkpoint: str, found_at: str, folder, step: int | None, role: str, layout: str,
               workers: Workers, lake_url: str, check=None) -> dg.Output:
    """The model's `checkpoints` row, once its Hugging Face folder is in the lake's model store (the copy every
    later step loads); its data version is the folder's content hash, so changed weights make everything
    computed from them stale. `check(loaded model)` runs before the row is written."""
    listed, digest = listing_fingerprint(found_at), content_hash(folder)
    model_uri = snapshot(folder, lake_url, digest)
    loaded = workers.model(model_uri)
    if check is not None:
        check(loaded)
    frame = pl.DataFrame({
        "checkpoint": [checkpoint], "uri": [found_at], "step": [step], "role": [role], "layout": [layout],
        "model_uri": [model_uri], "content_hash": [digest], "tokenizer_hash": [tokenizer_hash(loaded.tokenizer)],
        "vocab_size": [len(loaded.tokenizer)], "discovered_at": [_discovered_at(lake_url, checkpoint, digest)],
    }, schema_overrides={"step": pl.Int64, "vocab_size": pl.Int64})
    return _versioned(frame, digest, {names.LISTING: listed})


def _stored_row(lake_url: str, partition: str) -> pl.DataFrame | None:
    """The model's `checkpoints` row a previous run wrote, if any."""
    try:
        return lake.read_partition(lake_url, "checkpoints", partition)
    except FileNotFoundError:
        return None


def _discovered_at(lake_url: str, checkpoint: str, digest: str) -> datetime:
    """When these weights were first written to the lake: a rerun over the same weights keeps the time, so it
    writes the same row (its `rerun` metadata says unchanged); other weights are discovered now."""
    row = _stored_row(lake_url, lake.checkpoint_partition(checkpoint))
    if row is not None and row["content_hash"][0] == digest:
        return row["discovered_at"][0]
    return datetime.now(timezone.utc)


def _versioned(frame: pl.DataFrame, digest: str, metadata: dict) -> dg.Output:
    with warnings.catch_warnings():  # data versions are beta in Dagster 1.13; staleness relies on them
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(frame, data_version=dg.DataVersion(digest), metadata=metadata)


def _from_store(lake_url: str, partition: str, what: str, fix: str) -> dg.Output:
    """The row a previous run wrote, when the model's folder is gone (rotated away by the trainer): the
    analysis goes on from the model store, with the same data version."""
    row = _stored_row(lake_url, partition)
    if row is None or not stored(lake_url, row["content_hash"][0]):
        raise FileNotFoundError(f"{what}, and the lake's model store has no copy of it: {fix}")
    return _versioned(row.drop("code_version", strict=False), row["content_hash"][0],
                      {"source": f"{what}; analysed from the model store ({row['model_uri'][0]})"})


@dg.asset(code_version="3", group_name=names.INPUTS, kinds={"pytorch"},
          metadata={names.TABLE: "checkpoints", names.PARTITION: BASE_PARTITION})
def base_model(context: dg.AssetExecutionContext, study: StudyResource) -> dg.Output[pl.DataFrame]:
    """The base model's row of the `checkpoints` table (role base)."""
    path, lake_url = study.settings().required("base_model"), context.resources.io_manager.lake_url
    if not has_weights(path):
        return _from_store(lake_url, BASE_PARTITION, f"no base model at {path}",
                           "set BASE_MODEL to a Hugging Face model folder (save_pretrained)")
    return _model_row("base", path, local_copy(path), None, "base", "hf", study.workers(context), lake_url)


@dg.asset(code_version="3", group_name=names.INPUTS, kinds={"pytorch"}, partitions_def=checkpoints_partitions)
def checkpoints(context: dg.AssetExecutionContext, study: StudyResource,
                base_model: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """One checkpoint's row of the `checkpoints` table (role rl, or sft for a supervised run's), its model (merged
    where the trainer wrote shards or an adapter) kept in the lake's model store; its tokenizer must be the base's."""
    key, lake_url = context.partition_key, context.resources.io_manager.lake_url
    cfg = study.settings()
    folder = cfg.required("checkpoints_url") + (f" or {cfg.sft_checkpoints_url}" if cfg.sft_checkpoints_url else "")
    found = {c.key: c for c in cfg.checkpoints()}
    if key not in found:
        return _from_store(lake_url, lake.checkpoint_partition(key), f"checkpoint {key!r} is not in {folder} "
                           f"(found: {sorted(found)})", "point CHECKPOINTS_URL (SFT_CHECKPOINTS_URL for an SFT run's) "
                           "at the folder that holds it; a partition added by hand with no checkpoint behind it is "
                           "removed by the checkpoint sensor (partitions are its: one per checkpoint folder)")
    ckpt = found[key]
    if why := not_ready(ckpt):
        raise ValueError(f"checkpoint {key} at {ckpt.uri} cannot be analysed: {why}. If the trainer is still "
                         "writing it, the sensor takes it once complete.")
    workers = study.workers(context)
    base = workers.model(model_of(base_model))

    def check(rl: LoadedModel) -> None:
        check_same_tokenizer(base_model["uri"][0], base.tokenizer, ckpt.uri, rl.tokenizer)
        workers.pool.call(check_finite_logits, [rl], ckpt.uri)  # where the weights are (a Ray worker)

    model_dir = model_folder(ckpt, local_copy(model_of(base_model)))
    return _model_row(key, ckpt.uri, model_dir, ckpt.step, ckpt.role, ckpt.layout, workers, lake_url, check)
