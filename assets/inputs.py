"""Inputs of the study: the problems, the base model and each RL checkpoint, as lake tables."""

import warnings
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from assets import checks
from compute.checkpoints import discover_checkpoints, incomplete_reason, listing_fingerprint
from compute.models import check_finite_logits, check_same_tokenizer, content_hash, tokenizer_hash
from compute.problems import load_problems
from orchestration.io_manager import PARTITION, TABLE
from orchestration.partitions import BASE_PARTITION, checkpoints_partitions
from orchestration.resources import StudyResource


@dg.asset(code_version="1", group_name="inputs", kinds={"polars"}, metadata={PARTITION: ""},
          check_specs=checks.specs("problems"))
def problems(study: StudyResource):
    """Verifiable problems (dataset, problem_id, prompt, answer) from PROBLEMS_URL."""
    cfg = study.settings()
    yield from checks.output_and_checks("problems", load_problems(cfg.problems_url, cfg.max_problems))


LISTING = "listing_fingerprint"  # metadata: names, sizes and mtimes of the folder's files when it was hashed


def _model_row(checkpoint: str, uri: str, step: int | None, role: str, tokenizer) -> dg.Output:
    """The model's `checkpoints` row; its data version is the folder's content hash, so changed weights
    make everything computed from them stale."""
    listed, digest = listing_fingerprint(uri), content_hash(uri)
    frame = pl.DataFrame({
        "checkpoint": [checkpoint], "uri": [uri], "step": [step], "role": [role],
        "content_hash": [digest], "tokenizer_hash": [tokenizer_hash(tokenizer)], "vocab_size": [len(tokenizer)],
        "discovered_at": [datetime.now(timezone.utc)],
    }, schema_overrides={"step": pl.Int64, "vocab_size": pl.Int64})
    with warnings.catch_warnings():  # data versions are beta in Dagster 1.13; staleness relies on them
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(frame, data_version=dg.DataVersion(digest), metadata={LISTING: listed})


@dg.asset(code_version="2", group_name="inputs", kinds={"pytorch"},
          metadata={TABLE: "checkpoints", PARTITION: BASE_PARTITION})
def base_model(study: StudyResource) -> dg.Output[pl.DataFrame]:
    """The base model's row of the `checkpoints` table (role base)."""
    path = study.settings().base_model
    return _model_row("base", path, None, "base", study.model(path).tokenizer)


@dg.asset(code_version="2", group_name="inputs", kinds={"pytorch"}, partitions_def=checkpoints_partitions)
def checkpoints(context: dg.AssetExecutionContext, study: StudyResource,
                base_model: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """One RL checkpoint's row of the `checkpoints` table; its tokenizer must be the base's."""
    key = context.partition_key
    folder = study.settings().checkpoints_url
    found = {c.key: c for c in discover_checkpoints(folder)}
    if key not in found:
        raise FileNotFoundError(f"checkpoint {key!r} is not in {folder} (found: {sorted(found)})")
    ckpt = found[key]
    if why := incomplete_reason(ckpt.uri):
        raise ValueError(f"checkpoint {key} at {ckpt.uri} cannot be analysed: {why}. If the trainer is still "
                         "writing it, the sensor takes it once complete; otherwise re-export it with save_pretrained.")
    base, rl = study.model(base_model["uri"][0]), study.model(ckpt.uri)
    check_same_tokenizer(base.path, base.tokenizer, rl.path, rl.tokenizer)
    check_finite_logits(rl)
    return _model_row(key, ckpt.uri, ckpt.step, "rl", rl.tokenizer)
