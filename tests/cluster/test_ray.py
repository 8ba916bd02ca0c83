"""The study on a real two-node Ray cluster (`ray_local`: CPU workers standing in for GPUs, in a namespace of its
own): the model-bound steps in shards on the cluster give the in-process study's tables, row for row; a node
killed (SIGKILL) while it runs a cross-sampling shard costs a rerun of the shard, not a row; an error raised on a
worker reaches the step as raised there; no Ray process is left behind."""

from __future__ import annotations

import json
import os
import sys

import pytest

from compute import lake as lakeio
from tests.cluster.ray_local import in_namespace
from tests.procs import processes

KEY = "rl-step-000004"
# more samples than the other tests and lockstep batches of 32, so that cross-sampling has shards for both nodes
OVERRIDES = {"samples_per_problem": 4, "cross_batch_size": 32, "cross_eps_js": "0.01,0.1,inf"}


@pytest.mark.slow
def test_the_study_on_ray_equals_the_study_in_process_and_survives_a_killed_node(small_world, tmp_path):
    spec = {"world": str(small_world), "key": KEY, "local_lake": str(tmp_path / "local"),
            "ray_lake": str(tmp_path / "ray"), "temp_dir": f"/tmp/ray-{tmp_path.name[-12:]}", "overrides": OVERRIDES}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("RAY_ADDRESS", None)
    done = in_namespace([sys.executable, "-m", "tests.cluster.ray_study", str(tmp_path / "spec.json"),
                         str(tmp_path / "out.json")], env, timeout=900, log=tmp_path / "ray.log")
    assert done.returncode == 0, (tmp_path / "ray.log").read_text()[-5000:]
    out = json.loads((tmp_path / "out.json").read_text())
    print("\n" + json.dumps(out))

    # every check passed, in-process and on the cluster; there both nodes' workers returned cross-sampling shards
    for run in ("local", "ray"):
        assert out[run]["success"] and out[run]["checks"] and all(out[run]["checks"].values()), out[run]
    assert out["local"]["shard_workers"] == 1 and out["ray"]["shard_workers"] == 2
    assert out["ray"]["shards_rerun"] == 0

    # table for table, row for row
    for table in ("problems", "checkpoints", "rollouts", "scores", "token_shifts", "cross_samples", "cross_scores",
                  "summaries", "cross_summaries", "advantage_weights"):
        for partition in lakeio.list_partitions(spec["local_lake"], table):
            want = lakeio.read_partition(spec["local_lake"], table, partition)
            got = lakeio.read_partition(spec["ray_lake"], table, partition)
            if table == "checkpoints":  # where and when the model was stored differ by lake
                want, got = (f.drop("model_uri", "discovered_at") for f in (want, got))
            assert want.height > 0 and got.equals(want), (table, partition)

    # node_b died mid-shard: its shard ran again on the head's worker, and the partition is the same
    killed = out["killed"]
    assert killed["killed"] > 0 and killed["busy_when_killed"], killed
    assert killed["success"] and all(killed["checks"].values()) and killed["shards_rerun"] == 1, killed
    want = lakeio.read_partition(spec["local_lake"], "cross_samples", f"checkpoint={KEY}")
    assert lakeio.read_partition(spec["ray_lake"], "cross_samples", f"checkpoint={KEY}").equals(want)

    # an error raised by the work on a worker reaches the step as it was raised: one message, no Ray wrapping
    assert out["error"]["raised"] == "ValueError", out["error"]
    assert out["error"]["message"].startswith("the model at the NaN checkpoint produces NaN/inf logits")
    assert "ray::" not in out["error"]["message"] and "Traceback" not in out["error"]["message"]

    # the namespace took every Ray process with it
    left = [cmd for _, cmd in processes().values() if spec["temp_dir"] in cmd or "raylet/raylet" in cmd
            or "gcs_server" in cmd]
    assert not left, left
