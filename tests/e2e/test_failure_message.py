"""One failure, one message: a failing `shiftlake demo` used to print 137-303 lines with the cause repeated
three times among Dagster tracebacks. It prints the cause once (what, where, the fix) and the full log's path."""

import os
import subprocess
import sys
from pathlib import Path


def test_a_wrong_base_model_is_one_message_naming_the_fix_and_the_log(small_world, tmp_path):
    env = {**os.environ, "BASE_MODEL": str(tmp_path / "no-such-model"), "CHECKPOINTS_URL": str(small_world / "checkpoints"),
           "PROBLEMS_URL": str(small_world / "problems.jsonl"), "LAKE_URL": str(tmp_path / "lake"),
           "DAGSTER_HOME": str(tmp_path / "dagster")}
    out = subprocess.run([sys.executable, "-m", "orchestration.app.cli", "demo"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith("shiftlake demo: base_model failed in base_job: no base model at")
    assert "set BASE_MODEL to a Hugging Face model folder" in lines[0]
    assert out.stderr.count("no base model at") == 1 and "Traceback" not in out.stderr + out.stdout
    log = Path(lines[1].split("full log: ", 1)[1])
    assert log.is_file() and "in _from_store" in log.read_text()  # the full stack, for whoever needs it
