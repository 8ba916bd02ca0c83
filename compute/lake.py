"""The lake: Hive-style Parquet tables under one base URL (a local folder or any fsspec URL).

    <lake>/<table>/<column>=<value>/data.parquet

One writer, one reader, one URL resolver. A partition is written to a hidden temporary file in its
folder and renamed over `data.parquet` (on S3: one complete object copied over the other), so a reader
sees the old file or the new one, never half of one. Leftover temporary files of killed writers are
never read and are removed by the partition's next successful write (one writer per partition at a
time, as Dagster runs it).

S3 (`s3://bucket/prefix`) through `compute.storage`: its filesystem, retries of transient errors and one
`LakeUnavailable` message per failure naming the lake, its endpoint, the table and partition.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import fsspec
import polars as pl
import pyarrow.parquet as pq

from compute.storage import LakeUnavailable, redact, filesystem, resolve_lake_url, with_retries

DATA_FILE = "data.parquet"


def checkpoint_partition(key: str) -> str:
    """The partition folder of a checkpoint's rows in every per-checkpoint table."""
    return f"checkpoint={key}"


BASE_PARTITION = checkpoint_partition("base")  # the base model's own tables, computed once


def partition_dir(lake_url: str | None, table: str, partition: str) -> str:
    return f"{resolve_lake_url(lake_url)}/{table}/{partition}"


ROWS_DIGEST = b"shiftlake.rows"  # Parquet footer metadata: `rows_digest()` of the rows the writer was given


def rows_digest(frame: pl.DataFrame) -> str:
    """A digest of a frame's columns and rows, to tell a rewrite of the same rows without reading the old
    file back. Row hashes are polars' own, stable within one polars version only: the version is part of it."""
    digest = hashlib.sha256(str(frame.schema).encode())
    digest.update(frame.hash_rows().to_numpy().tobytes())
    return f"polars {pl.__version__} {digest.hexdigest()}"


def write_partition(lake_url: str | None, table: str, partition: str, frame: pl.DataFrame,
                    digest: str | None = None) -> str:
    """Write `frame` as the whole content of one partition, atomically replacing what was there; `digest`
    (`rows_digest()` of what it stands for) goes into the file's footer for `stored_digest()`."""
    table_ = frame.to_arrow()
    if digest is not None:
        table_ = table_.replace_schema_metadata({**(table_.schema.metadata or {}), ROWS_DIGEST: digest.encode()})
    return write_file(lake_url, table, partition, DATA_FILE, lambda f: pq.write_table(table_, f, compression="zstd"))


def stored_digest(lake_url: str | None, table: str, partition: str) -> str | None:
    """The digest a partition was written with (its Parquet footer only is read); None when it has none."""
    metadata = read_file(lake_url, table, partition, DATA_FILE, lambda f: pq.read_schema(f).metadata) or {}
    return metadata[ROWS_DIGEST].decode() if ROWS_DIGEST in metadata else None


def write_file(lake_url: str | None, table: str, partition: str, name: str, write_to: Callable) -> str:
    """Write one file of a partition (`write_to(binary file)` fills it), atomically replacing what was there."""
    lake_url = resolve_lake_url(lake_url)
    fs = filesystem(lake_url)
    folder = partition_dir(lake_url, table, partition)
    tmp = f"{folder}/{TMP_PREFIX}{uuid.uuid4().hex}.{name}.part"

    def write() -> None:
        fs.makedirs(folder, exist_ok=True)
        with fs.open(tmp, "wb") as f:
            write_to(f)
        fs.mv(tmp, f"{folder}/{name}")

    try:
        with_retries(lake_url, f"writing table {table!r} partition {partition or '-'}", write)
    except LakeUnavailable:
        raise
    except OSError as e:
        raise OSError(
            f"cannot write table {table!r} to {folder}: {redact(str(e.strerror or e))}. "
            "Point LAKE_URL at a folder or bucket you can write to."
        ) from None
    _remove_leftovers(fs, folder)
    return f"{folder}/{name}"


TMP_PREFIX = ".tmp-"


def _remove_leftovers(fs: fsspec.AbstractFileSystem, folder: str) -> None:
    """Temporary files of writers that died before their rename (never read by anyone)."""
    try:
        for path in fs.ls(folder, detail=False):
            if Path(path).name.startswith(TMP_PREFIX):
                fs.rm(path)
    except Exception:  # noqa: BLE001 - s3fs raises botocore's errors, not OSError, when the store is down
        pass  # best effort: the partition is already written, and its next write tries again


def read_file(lake_url: str | None, table: str, partition: str, name: str, parse: Callable = lambda f: f.read()):
    """One file of a partition, `parse(binary file)` (default: its bytes)."""
    lake_url = resolve_lake_url(lake_url)
    path = f"{partition_dir(lake_url, table, partition)}/{name}"
    fs = filesystem(lake_url)

    def read():
        with fs.open(path, "rb") as f:
            return parse(f)

    try:
        what = f"reading table {table!r} partition {partition or '-'}" + ("" if name == DATA_FILE else f" ({name})")
        return with_retries(lake_url, what, read)
    except FileNotFoundError:
        raise FileNotFoundError(f"table {table!r} has no partition {partition!r} in the lake ({path}); "
                                "materialise it first") from None


def read_partition(lake_url: str | None, table: str, partition: str) -> pl.DataFrame:
    return read_file(lake_url, table, partition, DATA_FILE, lambda f: pl.from_arrow(pq.read_table(f)))


def list_partitions(lake_url: str | None, table: str) -> list[str]:
    lake_url = resolve_lake_url(lake_url)
    fs = filesystem(lake_url)
    root = f"{lake_url}/{table}"

    def listed() -> list[str]:
        fs.invalidate_cache()
        return sorted(Path(p).parent.name for p in fs.glob(f"{root}/*/{DATA_FILE}"))

    return with_retries(lake_url, f"listing table {table!r}", listed)
