"""The lake: Hive-style Parquet tables under one base URL (a local folder or any fsspec URL).

    <lake>/<table>/<column>=<value>/data.parquet

One writer, one reader, one URL resolver. A partition is written to a hidden temporary file in its
folder and renamed over `data.parquet` (on S3: one complete object copied over the other), so a reader
sees the old file or the new one, never half of one. Leftover temporary files of killed writers are
never read and are removed by the partition's next successful write (one writer per partition at a
time, as Dagster runs it).

S3 (`s3://bucket/prefix`): the endpoint comes from AWS_ENDPOINT_URL (unset: AWS), credentials from the
usual AWS variables. Transient errors are retried with backoff; a store that stays down fails with
`LakeUnavailable` naming the lake, its endpoint, the table and partition. Missing or refused credentials
are not retried: they fail at once with `LakeUnavailable` naming the lake, its endpoint and the variables
to set. Credentials never appear in messages.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)  # between attempts; then the error is final


class LakeUnavailable(OSError):
    """The lake's store did not answer (after retries), or has no credentials or refused them."""


def endpoint(lake_url: str) -> str:
    """Where a lake's store answers: AWS_ENDPOINT_URL(_S3), AWS S3, or the local filesystem."""
    if lake_url.startswith(("s3://", "s3a://")):
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    return "local filesystem"


def filesystem(lake_url: str) -> fsspec.AbstractFileSystem:
    options = {}
    if lake_url.startswith(("s3://", "s3a://")):
        options = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                                     "retries": {"max_attempts": 2, "mode": "standard"}}}
        if endpoint(lake_url) != "AWS S3":
            options["endpoint_url"] = endpoint(lake_url)
        if os.environ.get("AWS_ACCESS_KEY_ID"):  # explicit, so changed keys give another (cached) filesystem
            options.update(key=os.environ["AWS_ACCESS_KEY_ID"], secret=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                           token=os.environ.get("AWS_SESSION_TOKEN"))
    fs, _ = fsspec.core.url_to_fs(lake_url, **options)
    return fs


def _redact(text: str) -> str:
    for var in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        if value := os.environ.get(var):
            text = text.replace(value, "***")
    return " ".join(text.split())  # one line


CREDENTIALS = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys, "
               "AWS_ENDPOINT_URL for a store other than AWS S3); for the local SeaweedFS, `make s3-up` writes "
               "them to infra/s3.env: set -a; . infra/s3.env; set +a")

# S3 error codes of a request the store refused as unauthenticated or unauthorised: no retry heals them
REFUSED = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "AuthorizationHeaderMalformed", "ExpiredToken",
           "InvalidAccessKeyId", "InvalidSecurity", "InvalidToken", "RequestTimeTooSkewed", "SignatureDoesNotMatch",
           "TokenRefreshRequired", "403"}


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ClientError, or of the one s3fs translated into `exc`."""
    for e in (exc, exc.__cause__):
        if isinstance(response := getattr(e, "response", None), dict):
            return response.get("Error", {}).get("Code")
    return None


def _where(lake_url: str) -> str:
    return f"the lake {resolve_lake_url(lake_url)} (endpoint {endpoint(lake_url)})"


@contextmanager
def store_errors(lake_url: str | None, what: str) -> Iterator[None]:
    """Raise what a remote lake's store raises inside the block, outside `with_retries` (DuckDB's views reach
    it through `filesystem`), as the lake's own `LakeUnavailable` when it is one: credentials missing or
    refused, the store unreachable. Anything else, and local lakes' errors, pass unchanged."""
    lake_url = resolve_lake_url(lake_url)
    try:
        yield
    except LakeUnavailable:
        raise
    except Exception as e:
        if "://" not in lake_url:
            raise
        from botocore.exceptions import BotoCoreError

        if (error := _refusal(lake_url, what, e)) is not None:
            raise error from None
        if _transient(e) and isinstance(e, BotoCoreError):
            raise _unreachable(lake_url, what, e) from None
        raise


def _refusal(lake_url: str, what: str, exc: BaseException) -> LakeUnavailable | None:
    """Credentials missing, or refused by the store: no retry heals these."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):  # raised before any request is sent
        which = "incomplete" if isinstance(exc, PartialCredentialsError) else "no"
        return LakeUnavailable(f"{which} credentials for {_where(lake_url)} while {what} "
                               f"({type(exc).__name__}: {_redact(str(exc))}): {CREDENTIALS}")
    code = _s3_code(exc)  # a local PermissionError has none
    if code in REFUSED or (code and isinstance(exc, PermissionError)):
        return LakeUnavailable(f"{_where(lake_url)} refused {what} ({code}: {_redact(str(exc))}): check the "
                               f"credentials and the bucket's policy; {CREDENTIALS}")
    return None


def _unreachable(lake_url: str, what: str, exc: BaseException, attempts: int = 1) -> LakeUnavailable:
    return LakeUnavailable(
        f"{_where(lake_url)} did not answer while {what}" + (f", after {attempts} attempts" if attempts > 1 else "")
        + f" ({type(exc).__name__}: {_redact(str(exc))}). Start it (make s3-up for the local SeaweedFS) or check "
        "AWS_ENDPOINT_URL and LAKE_URL; what was already written is unchanged.")


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: connection trouble and server errors, not missing files or refusals."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError)) or "Connect" in type(exc).__name__ \
        or "Endpoint" in type(exc).__name__


def with_retries(lake_url: str | None, what: str, action: Callable):
    """`action()`, retried with backoff on transient errors of a remote store; final errors (the store still
    down, credentials missing or refused) are `LakeUnavailable` naming the lake and `what`. Local paths get
    one attempt and their own errors."""
    lake_url = resolve_lake_url(lake_url)
    if "://" not in lake_url:
        return action()
    for attempt, delay in enumerate((*RETRY_DELAYS_S, None)):
        try:
            return action()
        except Exception as e:
            if (refused := _refusal(lake_url, what, e)) is not None:
                raise refused from None
            if not _transient(e):
                raise
            if delay is None:
                raise _unreachable(lake_url, what, e, attempt + 1) from None
            time.sleep(delay)


def partition_dir(lake_url: str | None, table: str, partition: str) -> str:
    return f"{resolve_lake_url(lake_url)}/{table}/{partition}"


def write_partition(lake_url: str | None, table: str, partition: str, frame: pl.DataFrame) -> str:
    """Write `frame` as the whole content of one partition, atomically replacing what was there."""
    return write_file(lake_url, table, partition, DATA_FILE,
                      lambda f: pq.write_table(frame.to_arrow(), f, compression="zstd"))


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
            f"cannot write table {table!r} to {folder}: {_redact(str(e.strerror or e))}. "
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
