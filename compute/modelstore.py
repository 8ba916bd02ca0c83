"""The model store: every analysed model's Hugging Face folder, kept in the lake under its content hash
(`<lake>/models/<sha256>/`), so that a checkpoint the trainer rotated away (`save_total_limit`, OpenRLHF's
three kept) stays re-analysable from the lake alone.

Content-addressed: the files kept are those `models.content_hash` reads (config, weights, tokenizer), so a
stored folder hashes to its own name, and an unchanged model is stored once however often it is analysed.
A snapshot is whole once its marker is written (last); a half-written one is written again. Local lakes and
S3 go through the same fsspec code. Knows nothing about Dagster.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from compute.storage import filesystem, resolve_lake_url, with_retries
from compute.models import CONTENT_SUFFIXES

STORE = "models"
MARKER = ".complete"


def store_uri(lake_url: str, digest: str) -> str:
    return f"{resolve_lake_url(lake_url)}/{STORE}/{digest}"


def stored(lake_url: str, digest: str) -> str | None:
    """The store's whole copy of the model with this content hash, or None."""
    target = store_uri(lake_url, digest)
    fs = filesystem(target)
    fs.invalidate_cache()
    return target if with_retries(lake_url, "looking up the model store", lambda: fs.exists(f"{target}/{MARKER}")) else None


def snapshot(folder: str | Path, lake_url: str, digest: str) -> str:
    """Copy the model in local `folder` (content hash `digest`) into the store, unless it is there; its URI."""
    if found := stored(lake_url, digest):
        return found
    target = store_uri(lake_url, digest)
    fs = filesystem(target)
    root = Path(folder)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CONTENT_SUFFIXES):
        dest = f"{target}/{f.relative_to(root).as_posix()}"

        def put(f=f, dest=dest):
            fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            fs.put_file(str(f), dest)

        with_retries(lake_url, f"storing model {digest[:12]} ({f.name})", put)
    with_retries(lake_url, f"storing model {digest[:12]}", lambda: fs.pipe_file(f"{target}/{MARKER}", digest.encode()))
    return target


def model_of(row: pl.DataFrame) -> str:
    """Where to load the model of a `checkpoints` row from: its snapshot in the store (rows written before the
    store existed: the folder it was found in)."""
    if "model_uri" in row.columns and row["model_uri"][0]:
        return row["model_uri"][0]
    return row["uri"][0]
