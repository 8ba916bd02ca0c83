"""Run inside `ray_local.in_namespace` (PID 1 of its own namespaces): start the two-node cluster, then
1. the small world's base and one checkpoint analysed in-process (Dagster runs, no Ray) into one lake,
2. the same runs with RAY_ADDRESS set, the model-bound steps in shards on the cluster, into another lake,
3. cross_samples of that checkpoint again on the cluster, node_b SIGKILLed while it runs a shard,
4. the finite-logits check of a checkpoint with a NaN weight, on the head's worker: the error as raised there;
and write what the runs reported as JSON. The test compares the lakes.

    python -m tests.cluster.ray_study SPEC.json OUT.json
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import torch

from orchestration.automation.instance import add_partitions
from tests.cluster.ray_local import ADDRESS, kill_node_b_when_busy, start_cluster, stop_cluster
from tests.conftest import BASE_ASSETS, CHECKPOINT_ASSETS, materialise, study_settings


def _report(result: dg.ExecuteInProcessResult, asset: str, key: str, seconds: float) -> dict:
    [materialisation] = [m for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == asset
                         and m.partition == key]
    metadata = materialisation.materialization.metadata
    return {"success": result.success, "seconds": round(seconds, 1),
            "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
            "shard_workers": metadata["shard_workers"].value, "shards_rerun": metadata["shards_rerun"].value}


def _error_on_a_worker(world: Path, folder: Path) -> dict:
    import ray

    from compute.models import check_finite_logits, load_handle
    from compute.raypool import RayPool
    from tests.assets.test_bad_input import _nan_weights

    shutil.copytree(world / "checkpoints" / "checkpoint-4", folder)
    _nan_weights(folder)
    ray.init(address=ADDRESS)
    pool = RayPool(1)
    try:
        pool.call(check_finite_logits, [load_handle(folder)], "the NaN checkpoint")
        return {"raised": None}
    except Exception as exc:  # what the step would see
        return {"raised": type(exc).__name__, "message": str(exc)}
    finally:
        pool.close()
        ray.shutdown()


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    world, key, out = Path(spec["world"]), spec["key"], {}
    local = study_settings(world, spec["local_lake"], **spec["overrides"])
    on_ray = dataclasses.replace(study_settings(world, spec["ray_lake"], **spec["overrides"]), ray_address=ADDRESS)
    torch.set_num_threads(1)  # the threads of each Ray worker (ray_worker_cpus): the same float sums, bit for bit
    start_cluster(Path(spec["temp_dir"]))
    try:
        for name, settings in (("local", local), ("ray", on_ray)):
            with dg.DagsterInstance.ephemeral() as instance:
                add_partitions(instance, [key])
                t = time.perf_counter()
                assert materialise(settings, instance, BASE_ASSETS).success
                result = materialise(settings, instance, CHECKPOINT_ASSETS, key)
                out[name] = _report(result, "cross_samples", key, time.perf_counter() - t)
        seen = {}
        killer = threading.Thread(target=lambda: seen.update(kill_node_b_when_busy("_ShardWorker.run")))
        killer.start()
        with dg.DagsterInstance.ephemeral() as instance:
            add_partitions(instance, [key])
            t = time.perf_counter()
            result = materialise(on_ray, instance, ["cross_samples"], key)
            out["killed"] = {**_report(result, "cross_samples", key, time.perf_counter() - t)}
        killer.join()
        out["killed"].update(seen)
        out["error"] = _error_on_a_worker(world, Path(spec["ray_lake"]).parent / "nan-checkpoint")
    finally:
        stop_cluster()
    Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
