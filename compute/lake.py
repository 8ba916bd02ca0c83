"""The lake: Hive-style Parquet tables under one base URL (a local folder or any fsspec URL).

    <lake>/<table>/<column>=<value>/data.parquet

One writer, one reader, one URL resolver. A partition is written to a hidden temporary file in its
folder and renamed over `data.parquet`, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import fsspec
import polars as pl
import pyarrow.parquet as pq

DATA_FILE = "data.parquet"


def resolve_lake_url(url: str | None = None) -> str:
    """The lake's base URL: `url`, else $LAKE_URL, else ./lake; local paths made absolute."""
    url = url or os.environ.get("LAKE_URL") or "./lake"
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/")
    return str(Path(url.removeprefix("file://")).expanduser().resolve())


def filesystem(lake_url: str) -> fsspec.AbstractFileSystem:
    fs, _ = fsspec.core.url_to_fs(lake_url)
    return fs


def partition_dir(lake_url: str, table: str, partition: str) -> str:
    return f"{resolve_lake_url(lake_url)}/{table}/{partition}"


def write_partition(lake_url: str, table: str, partition: str, frame: pl.DataFrame) -> str:
    """Write `frame` as the whole content of one partition, atomically replacing what was there."""
    fs = filesystem(lake_url)
    folder = partition_dir(lake_url, table, partition)
    try:
        fs.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}.parquet.part"
        with fs.open(tmp, "wb") as f:
            pq.write_table(frame.to_arrow(), f, compression="zstd")
        fs.mv(tmp, f"{folder}/{DATA_FILE}")
    except OSError as e:
        raise OSError(
            f"cannot write table {table!r} to {folder}: {e.strerror or e}. "
            "Point LAKE_URL at a folder or bucket you can write to."
        ) from e
    return f"{folder}/{DATA_FILE}"


def read_partition(lake_url: str, table: str, partition: str) -> pl.DataFrame:
    path = f"{partition_dir(lake_url, table, partition)}/{DATA_FILE}"
    fs = filesystem(lake_url)
    if not fs.exists(path):
        raise FileNotFoundError(f"table {table!r} has no partition {partition!r} in the lake ({path}); "
                                "materialise it first")
    with fs.open(path, "rb") as f:
        return pl.from_arrow(pq.read_table(f))


def list_partitions(lake_url: str, table: str) -> list[str]:
    fs = filesystem(lake_url)
    root = f"{resolve_lake_url(lake_url)}/{table}"
    if not fs.exists(root):
        return []
    return sorted(Path(p).name for p in fs.ls(root, detail=False) if fs.exists(f"{p}/{DATA_FILE}"))
