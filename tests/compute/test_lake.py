"""Lake I/O: whole-partition replacement, hidden leftovers, and a clear error for unwritable lakes."""

import os

import polars as pl
import pytest

from compute import lake, storage


def test_partition_is_replaced_whole_and_leftovers_are_invisible(tmp_path):
    url = str(tmp_path)
    lake.write_partition(url, "t", "checkpoint=a", pl.DataFrame({"x": [1, 2, 3]}))
    lake.write_partition(url, "t", "checkpoint=a", pl.DataFrame({"x": [7]}))
    (tmp_path / "t" / "checkpoint=a" / ".tmp-dead.parquet.part").write_bytes(b"half a file")
    assert lake.read_partition(url, "t", "checkpoint=a")["x"].to_list() == [7]
    assert lake.list_partitions(url, "t") == ["checkpoint=a"]
    assert sorted(os.listdir(tmp_path / "t" / "checkpoint=a")) == [".tmp-dead.parquet.part", "data.parquet"]


def test_missing_partition_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialise"):
        lake.read_partition(str(tmp_path), "t", "checkpoint=zz")


def test_unwritable_lake_names_the_table_and_the_fix(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    blocker = ro / "t"
    blocker.write_text("a file where the table folder should be")  # fails for root too
    with pytest.raises(OSError, match=r"cannot write table 't' .*Point LAKE_URL at a folder"):
        lake.write_partition(str(ro), "t", "checkpoint=a", pl.DataFrame({"x": [1]}))


def test_a_store_that_dies_after_the_write_keeps_the_written_partition(tmp_path, monkeypatch):
    # s3fs raises botocore's EndpointConnectionError (not an OSError) when the server is gone; the
    # leftover sweep after a completed write is best effort and must not turn the write into a failure
    from botocore.exceptions import EndpointConnectionError
    from fsspec.implementations.local import LocalFileSystem

    def server_gone(self, path, detail=True, **kwargs):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    monkeypatch.setattr(LocalFileSystem, "ls", server_gone)
    url = str(tmp_path)
    path = lake.write_partition(url, "t", "checkpoint=a", pl.DataFrame({"x": [5]}))
    monkeypatch.undo()
    assert path.endswith("t/checkpoint=a/data.parquet")
    assert lake.read_partition(url, "t", "checkpoint=a")["x"].to_list() == [5]


def without_credentials(monkeypatch, tmp_path) -> None:
    """No AWS credentials anywhere botocore looks (variables, files, instance metadata)."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: botocore fails before sending


@pytest.mark.parametrize("partial", [False, True])
def test_missing_credentials_name_the_lake_and_the_variables_at_once(tmp_path, monkeypatch, partial):
    # a raw botocore NoCredentialsError said nothing of the lake nor what to set; retrying cannot help
    without_credentials(monkeypatch, tmp_path)
    if partial:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "SLACCESSKEYWITHOUTSECRET")
    sleeps = []
    monkeypatch.setattr(storage.time, "sleep", sleeps.append)
    with pytest.raises(storage.LakeUnavailable) as err:
        lake.read_partition("s3://shiftlake/nocreds", "t", "checkpoint=a")
    message = str(err.value)
    assert message.startswith(f"{'incomplete' if partial else 'no'} credentials for the lake s3://shiftlake/nocreds "
                              "(endpoint http://127.0.0.1:9) while reading table 't' partition checkpoint=a")
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in message and "infra/s3.env" in message
    assert "\n" not in message and "SLACCESSKEY" not in message and sleeps == []


def _client_error(code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": f"{code} (the store's words)"}}, "GetObject")


def _translated(code: str, as_type=PermissionError):
    """What s3fs raises for a ClientError: a Python error with the ClientError as its cause."""
    error = as_type(f"{code} (the store's words)")
    error.__cause__ = _client_error(code)
    return error


def _endpoint_down():
    from botocore.exceptions import EndpointConnectionError

    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9/shiftlake")


REFUSED = "the lake s3://b/l (endpoint http://127.0.0.1:9) refused reading table 't'"
DOWN = "the lake s3://b/l (endpoint http://127.0.0.1:9) did not answer while reading table 't', after 5 attempts"
ERRORS = [  # (what the store raised, attempts made, how the lake's error starts)
    (lambda: _translated("InvalidAccessKeyId"), 1, REFUSED),  # s3fs: PermissionError
    (lambda: _translated("SignatureDoesNotMatch"), 1, REFUSED),
    (lambda: _translated("AccessDenied"), 1, REFUSED),
    (lambda: _translated("403"), 1, REFUSED),  # a HEAD refused: no body, only the status
    (lambda: _translated("InvalidToken", OSError), 1, REFUSED),  # s3fs: OSError(EINVAL), otherwise "transient"
    (lambda: _client_error("ExpiredToken"), 1, REFUSED),  # botocore's own, untranslated
    (_endpoint_down, 5, DOWN),  # retried, then final
]


@pytest.mark.parametrize("raised, attempts, starts", ERRORS)
def test_refusals_are_final_and_a_store_down_is_retried(monkeypatch, raised, attempts, starts):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    calls = []

    def action():
        calls.append(1)
        raise raised()

    with pytest.raises(storage.LakeUnavailable) as err:
        storage.with_retries("s3://b/l", "reading table 't'", action)
    assert len(calls) == attempts and str(err.value).startswith(starts)
    assert ("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in str(err.value)) == (attempts == 1)


def test_store_errors_outside_retries_become_the_lakes_and_others_pass(tmp_path, monkeypatch):
    # DuckDB's views reach the store through `filesystem` without `with_retries`: the CLI wraps them
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(storage.LakeUnavailable, match=r"^the lake s3://b/l \(endpoint http://127.0.0.1:9\) did not answer "
                                                    r"while running the query \(EndpointConnectionError"):
        with storage.store_errors("s3://b/l", "running the query"):
            raise _endpoint_down()
    for url, error in (("s3://b/l", ValueError("not the store's")), ("s3://b/l", OSError("a local file")),
                       (str(tmp_path), _endpoint_down())):
        with pytest.raises(type(error)):
            with storage.store_errors(url, "running the query"):
                raise error


def test_no_lake_url_means_the_default_lake(tmp_path, monkeypatch):
    # `shiftlake report` passed --lake's None down to the writer ('NoneType' has no attribute 'startswith')
    monkeypatch.setenv("LAKE_URL", str(tmp_path))
    path = lake.write_file(None, "reports", "checkpoint=k", "report.html", lambda f: f.write(b"<html>"))
    assert path == f"{tmp_path}/reports/checkpoint=k/report.html"
    assert lake.read_file(None, "reports", "checkpoint=k", "report.html") == b"<html>"
    assert lake.list_partitions(None, "reports") == []  # holds report.html, no data.parquet


def test_a_partition_keeps_the_digest_of_its_rows_in_its_footer(tmp_path):
    url = str(tmp_path)
    frame = pl.DataFrame({"x": [1, 2, 3], "ids": [[1, 2], [3], []], "s": ["a", None, "c"]})
    digest = lake.rows_digest(frame)
    lake.write_partition(url, "t", "checkpoint=a", frame, digest)
    assert lake.stored_digest(url, "t", "checkpoint=a") == digest
    assert lake.read_partition(url, "t", "checkpoint=a").equals(frame)  # the footer adds no column
    # the same rows built in other chunks hash the same; one changed value, order or dtype does not
    assert lake.rows_digest(pl.concat([frame.slice(0, 1), frame.slice(1)], rechunk=False)) == digest
    for other in (frame.with_columns(x=pl.Series([1, 2, 4])), frame.reverse(), frame.with_columns(pl.col("x").cast(pl.Int32))):
        assert lake.rows_digest(other) != digest
    lake.write_partition(url, "t", "checkpoint=b", frame)
    assert lake.stored_digest(url, "t", "checkpoint=b") is None
