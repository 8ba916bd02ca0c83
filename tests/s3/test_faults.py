"""The lake on a real SeaweedFS S3 server under faults: a writer killed mid-partition, the server going
down mid-run and coming back, and requests without (or with wrong) credentials. No mocks of S3."""

import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import polars as pl
import pytest

from compute import lake as lakeio
from compute import storage
from compute import lakesql
from compute.processes import stop_group
from infra import s3local
from tests.conftest import CHECKPOINT_ASSETS, materialise, study_settings
from tests.lakes import TABLES, assert_same_tables

CHILD = """
import sys, time
import polars as pl
import compute.lake as L
import compute.storage as S

url, when = sys.argv[1], sys.argv[2]
real_write, real_mv = L.pq.write_table, None

def half_then_hang(table, f, **kw):  # the writer dies half way through the file
    real_write(table.slice(0, table.num_rows // 2), f, **kw)
    f.flush()
    print("killable", flush=True)
    time.sleep(600)

def hang_before_rename(*args, **kw):  # the file is written, the rename never happens
    print("killable", flush=True)
    time.sleep(600)

if when == "mid-write":
    L.pq.write_table = half_then_hang
else:
    S.filesystem(url).__class__.mv = hang_before_rename
big = pl.DataFrame({"row": pl.int_range(0, 3_000_000, eager=True), "value": pl.Series([1.5] * 3_000_000)})
L.write_partition(url, "faults", "checkpoint=x", big)
"""


@pytest.mark.parametrize("when", ["mid-write", "before-rename"])
def test_a_writer_killed_mid_partition_leaves_the_previous_version(s3_server, when):
    url = f"s3://shiftlake/kill-{when}"
    v1 = pl.DataFrame({"row": [0, 1, 2], "value": [0.5, 0.5, 0.5]})
    lakeio.write_partition(url, "faults", "checkpoint=x", v1)
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, when], stdout=subprocess.PIPE, text=True,
                             env=os.environ.copy())
    try:
        assert child.stdout.readline().strip() == "killable"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    # readers see the previous complete version: the partition reader and the SQL view alike
    assert lakeio.read_partition(url, "faults", "checkpoint=x").equals(v1)
    con = lakesql.connect(url)  # DuckDB over S3 through the same fsspec filesystem as the views
    assert con.execute(f"SELECT count(*), sum(value) FROM read_parquet('{url}/faults/*/data.parquet')").fetchone() == (3, 1.5)
    fs = storage.filesystem(url)
    fs.invalidate_cache()
    leftovers = [p for p in fs.ls(f"{url}/faults/checkpoint=x", detail=False) if not p.endswith("/data.parquet")]
    assert len(leftovers) == (1 if when == "before-rename" else 0)  # a multipart upload never completed is invisible
    v3 = v1.with_columns(pl.col("value") * 2)
    lakeio.write_partition(url, "faults", "checkpoint=x", v3)  # the next write replaces it and cleans up
    fs.invalidate_cache()
    assert [p.rsplit("/", 1)[1] for p in fs.ls(f"{url}/faults/checkpoint=x", detail=False)] == ["data.parquet"]
    assert lakeio.read_partition(url, "faults", "checkpoint=x").equals(v3)


def test_no_credentials_or_wrong_ones_are_refused(s3_server, monkeypatch):
    import s3fs

    url = "s3://shiftlake/refusals"
    lakeio.write_partition(url, "t", "checkpoint=x", pl.DataFrame({"a": [1]}))
    anonymous = s3fs.S3FileSystem(anon=True, endpoint_url=s3_server.env["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    with pytest.raises(PermissionError):
        anonymous.ls("shiftlake/refusals")
    with pytest.raises(PermissionError):
        anonymous.cat(f"shiftlake/refusals/t/checkpoint=x/data.parquet")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    with pytest.raises(storage.LakeUnavailable, match="refused reading table 't'") as err:
        lakeio.read_partition(url, "t", "checkpoint=x")
    assert "not-the-secret" not in str(err.value) and "AKIAWRONG" not in str(err.value)
    assert s3_server.env["AWS_ENDPOINT_URL"] in str(err.value)


def _materialise(settings, instance, partition=None, selection=None):
    return materialise(settings, instance, selection, partition, raise_on_error=False)


@pytest.mark.slow
@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_server_down_mid_run_fails_clearly_and_a_rerun_matches_an_uninterrupted_run(small_world, lake, tmp_path,
                                                                                  monkeypatch):
    reference_url, keys = lake  # the same study, uninterrupted (local or on the session's server)
    state = tmp_path / "s3"
    server = s3local.start(state=state, identities=state / "identities.json")
    for k, v in server.env.items():
        if k != "LAKE_URL":
            monkeypatch.setenv(k, v)
    url = "s3://shiftlake/interrupted"
    settings = study_settings(small_world, url)
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("checkpoints", keys)
            assert _materialise(settings, instance, selection=["problems", "base_model", "base_rollouts",
                                                                "base_scores"]).success
            outcome = {}
            run = threading.Thread(target=lambda: outcome.update(
                result=_materialise(settings, instance, keys[0], CHECKPOINT_ASSETS)))
            run.start()
            # the server dies once the run has written its first table (rollouts), before the rest
            deadline = time.monotonic() + 120
            while not lakeio.list_partitions(url, "rollouts")[1:] and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
            run.join(timeout=300)
            result = outcome["result"]
            assert not result.success
            failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
            error, message = failure.event_specific_data.error, ""
            while error is not None:  # Dagster's error wraps ours as its cause
                message, error = message + error.message, error.cause
            assert server.env["AWS_ENDPOINT_URL"] in message and "table" in message, message
            logs = " ".join(str(e.message) + str(e.event_specific_data) for e in result.all_events)
            for secret in (server.env["AWS_SECRET_ACCESS_KEY"], server.env["AWS_ACCESS_KEY_ID"]):
                assert secret not in logs
            # back up on the same data and port: rerun what failed, and its tables match an uninterrupted run's
            server = s3local.start(state=state, identities=state / "identities.json",
                                   s3_port=int(server.env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]))
            assert _materialise(settings, instance, keys[0], CHECKPOINT_ASSETS).success
            assert_same_tables(url, reference_url, [t for t in TABLES if t not in ("training_curves", "trend")],
                               partitions=[lakeio.BASE_PARTITION, lakeio.checkpoint_partition(keys[0])])
    finally:
        stop_group(server.process, timeout=2.0)  # a throwaway server: no need for a clean stop
