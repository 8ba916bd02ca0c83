"""Lake I/O: whole-partition replacement, hidden leftovers, and a clear error for unwritable lakes."""

import os

import polars as pl
import pytest

from compute import lake


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
