"""The CLI's lake: every command takes it from --lake, else $LAKE_URL, else ./lake (`shiftlake report` passed
None down and crashed with "'NoneType' object has no attribute 'startswith'"), and a store without, or
refusing, credentials or not answering is one line naming the lake and what to set, with no traceback
(it was botocore's raw NoCredentialsError)."""

import os
import subprocess
import sys
import uuid

import polars as pl
import pytest

from compute import lake, storage
from orchestration.app.cli import main
from tests.compute.test_lake import without_credentials

COMMANDS = [["sql", "SELECT * FROM checkpoints"], ["report", "--checkpoint", "K"], ["check"]]


def _one_line_error(capsys, command: list[str]) -> str:
    assert main(command) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"shiftlake {command[0]}: "), err
    return err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_takes_the_lake_from_LAKE_URL(tmp_path, monkeypatch, capsys, command):
    monkeypatch.setenv("LAKE_URL", str(tmp_path / "empty-lake"))
    monkeypatch.chdir(tmp_path)  # not ./lake
    assert main(command) == 1  # the lake's own "nothing here yet", naming it
    out, err = capsys.readouterr()
    assert str(tmp_path / "empty-lake") in err and "materialise" in err and "Traceback" not in err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_no_credentials_is_one_line_naming_the_lake_and_the_variables(tmp_path, monkeypatch, capsys, command):
    without_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("LAKE_URL", "s3://shiftlake/nocreds")
    err = _one_line_error(capsys, command)
    assert "no credentials for the lake s3://shiftlake/nocreds (endpoint http://127.0.0.1:9)" in err
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err and "infra/s3.env" in err


def test_the_installed_command_prints_no_traceback(tmp_path, monkeypatch):
    without_credentials(monkeypatch, tmp_path)
    env = {**os.environ, "LAKE_URL": "s3://shiftlake/nocreds"}
    run = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "report", "--checkpoint", "K"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stdout == "" and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("shiftlake report: no credentials for the lake s3://shiftlake/nocreds")
    assert run.stderr.count("\n") == 1


def test_against_seaweedfs_without_wrong_and_unreachable(s3_server, tmp_path, monkeypatch, capsys):
    url = f"s3://shiftlake/cli-{uuid.uuid4().hex[:8]}"
    lake.write_partition(url, "checkpoints", "checkpoint=K", pl.DataFrame({"checkpoint": ["K"], "role": ["rl"],
                                                                          "step": [1]}))
    endpoint = s3_server.env["AWS_ENDPOINT_URL"]
    monkeypatch.setenv("LAKE_URL", url)
    with monkeypatch.context() as mp:
        without_credentials(mp, tmp_path)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        err = _one_line_error(capsys, ["sql", "SELECT * FROM checkpoints"])
        assert f"no credentials for the lake {url} (endpoint {endpoint})" in err and "AWS_SECRET_ACCESS_KEY" in err
    with monkeypatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "SLWRONGWRONGWRONG1")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
        for command in COMMANDS:
            err = _one_line_error(capsys, command)
            assert f"the lake {url} (endpoint {endpoint}) refused" in err and "AWS_ACCESS_KEY_ID" in err, err
            assert "SLWRONG" not in err and "not-the-secret" not in err
    with monkeypatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
        mp.setattr(storage, "RETRY_DELAYS_S", (0.0,))
        for command in COMMANDS:
            err = _one_line_error(capsys, command)
            assert f"the lake {url} (endpoint http://127.0.0.1:9) did not answer" in err and "AWS_ENDPOINT_URL" in err
