"""`shiftlake study`: everything checkable is checked before any model work, the plan is printed, and each
problem is one line with its fix; `shiftlake status` says where each checkpoint stands."""

import shutil

import pytest

from orchestration.app.cli import STUDY_OPTIONS, main

FIXTURES = "tests/fixtures/problems"


@pytest.fixture
def clean_env(monkeypatch):
    for variable in STUDY_OPTIONS.values():  # cmd_study writes its options into the environment: restored after
        monkeypatch.setenv(variable, "")


def test_the_plan_of_a_good_study(small_world, tmp_path, clean_env, capsys):
    rc = main(["study", "--base", str(small_world / "base"), "--checkpoints", str(small_world / "checkpoints"),
               "--problems", f"{FIXTURES}/gsm8k.jsonl", "--lake", str(tmp_path / "lake"), "--verifier", "math_verify",
               "--template", "Question: {problem}\nAnswer:", "--plan"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "rl-step-000002           hf         ready" in out.out and "gsm8k 3" in out.out
    assert "first prompt" in out.out and "'Question: Maya buys" in out.out
    assert "verifier     gsm8k: math_verify 2+" in out.out and "(writable)" in out.out
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").iterdir())  # the probe left nothing


def test_every_problem_is_named_before_any_model_work(small_world, tmp_path, clean_env, capsys):
    watched = tmp_path / "run"
    shutil.copytree(small_world / "checkpoints" / "checkpoint-2", watched / "checkpoint-2")
    (watched / "checkpoint-2" / "model.safetensors").write_bytes(b"\0" * 16)  # truncated: still being written
    (watched / "global_step9").mkdir()
    (watched / "global_step9" / "mp_rank_00_model_states.pt").write_bytes(b"x")
    rc = main(["study", "--base", str(tmp_path / "nope"), "--checkpoints", str(watched), "--problems",
               f"{FIXTURES}/broken_line3.jsonl", "--template", "Q: {question}", "--plan"])
    out = capsys.readouterr()
    assert rc == 2
    assert "rl-step-000002           hf         not analysed: weight shard model.safetensors truncated" in out.out
    assert "rl-step-000009           unknown    not analysed: no model shiftlake can load" in out.out
    errors = out.err.split("cannot start:")[1].strip().splitlines()
    assert len(errors) == 4, errors  # base, no checkpoint ready, problems file, template: one line each
    assert errors[0].startswith("- BASE_MODEL=") and "line 3: not valid JSON" in out.err
    assert "{question}" in out.err


def test_study_without_inputs_points_at_demo(clean_env, capsys):
    assert main(["study"]) == 2
    assert "--base (or BASE_MODEL)" in capsys.readouterr().err


def test_status_lists_each_checkpoint_with_its_state(small_world, tmp_path, clean_env, monkeypatch, capsys):
    watched = tmp_path / "run"
    shutil.copytree(small_world / "checkpoints", watched)
    (watched / "checkpoint-4" / "tokenizer.json").unlink()
    for variable, value in {"DAGSTER_HOME": str(tmp_path / "dagster"), "CHECKPOINTS_URL": str(watched),
                            "BASE_MODEL": str(small_world / "base"), "LAKE_URL": str(tmp_path / "lake")}.items():
        monkeypatch.setenv(variable, value)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "rl-step-000002           pending   hf checkpoint, complete" in out
    assert "rl-step-000004           waiting   tokenizer files missing" in out


def test_status_imports_neither_torch_nor_transformers(small_world, tmp_path):
    """`shiftlake status` reads listings, configs and the instance: with torch it took 6 s on 2 cores, 3.3 s
    without."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "CHECKPOINTS_URL": str(small_world / "checkpoints"),
           "BASE_MODEL": str(small_world / "base"), "LAKE_URL": str(tmp_path / "lake")}
    code = ("import sys; from orchestration.app.cli import main; rc = main(['status']); "
            "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rl-step-000004" in done.stdout and done.stdout.strip().splitlines()[-1] == "0 []", done.stdout


def test_a_study_reruns_checkpoints_rotated_away_that_the_lake_holds(tmp_path):
    """The demo and the study analyse what is on disk now plus registered checkpoints whose folders the
    trainer deleted but whose rows (and stored models) are in the lake, so no printed result is out of date."""
    import dagster as dg
    import polars as pl

    from compute import lake
    from orchestration.app.demo import rotated_away

    url = str(tmp_path / "lake")
    lake.write_partition(url, "checkpoints", "checkpoint=rl-step-000001", pl.DataFrame({"checkpoint": ["rl-step-000001"]}))
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("checkpoints", ["rl-step-000001", "rl-step-000002", "rl-step-000003"])
        # 2 is on disk; 3 was registered but never analysed, so the lake has nothing to analyse it from
        assert rotated_away(instance, url, ["rl-step-000002"]) == ["rl-step-000001"]


def test_status_without_a_checkpoint_folder_is_one_message(tmp_path, clean_env, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    assert main(["status", "--checkpoints", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftlake status: checkpoint folder") and "Traceback" not in err and len(err.splitlines()) == 1
