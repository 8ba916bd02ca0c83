"""`shiftlake bench --only ray`: cross-sampling of one toy checkpoint (the default world's last, its first
`problems` problems, the study's default grid, lockstep batches of `rows` so that the work comes in many shards: on
a CPU the toy pair's own batch size takes a whole phase in one or two batches) in this process with 1 torch thread, then on a Ray cluster by 1 and
by 2 shard workers of 1 thread each (`compute.raypool`): seconds, tokens per second, the speed-up over one worker,
and whether each table equals the in-process one. The cluster is RAY_ADDRESS's, or a one-node Ray this starts on
127.0.0.1 with a CPU per worker. Each pool's workers are started and warmed first on a few problems (model
loading), so the figures are decoding's."""

from __future__ import annotations

import os
import time

import torch

from compute import tables
from compute.checkpoints import discover_checkpoints
from compute.models import load_handle, load_model
from compute.problems import load_problems
from compute.settings import Settings
from compute.shards import LOCAL
from compute.toyworld.world import build_world


def bench_ray(problems: int = 16, workers: tuple[int, ...] = (1, 2), rows: int = 256) -> None:
    import ray

    from compute.raypool import RayPool

    world = build_world()
    base_uri, rl_uri = str(world / "base"), discover_checkpoints(world / "checkpoints")[-1].uri
    frame = load_problems(str(world / "problems.jsonl"), problems)
    cfg = Settings()
    grid = cfg.cross_grid()

    def run(base, rl, pool=LOCAL, subset=frame):
        return tables.cross_samples(base, rl, subset, "bench", grid, cfg.samples_per_problem, cfg.sampling(),
                                    cfg.seed, rows, cfg.prompts(), pool)

    torch.set_num_threads(1)
    t = time.perf_counter()
    want = run(load_model(base_uri), load_model(rl_uri))
    local_s = time.perf_counter() - t
    tokens = int(want["n_tokens"].sum())
    print(f"cross-sampling, toy world {world.name}, {want.height} responses ({problems} problems x "
          f"{cfg.samples_per_problem} samples x {want.select('direction', 'criterion', 'eps', 'coin').n_unique()} "
          f"rules), {tokens} tokens, batches of {rows}")
    print(f"  {'in process, 1 thread':<28} {local_s:7.1f} s {tokens / local_s:9.0f} tok/s")
    started = not os.environ.get("RAY_ADDRESS")
    if started:
        ray.init(num_cpus=max(workers), num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)
    else:
        ray.init(log_to_driver=False)
    try:
        base, rl = load_handle(base_uri), load_handle(rl_uri)
        one = None
        for n in workers:
            pool = RayPool(n, gpus=0, cpus=1)
            pool.start()
            run(base, rl, pool, frame.head(2 * n))  # warm: every worker's models loaded (a shard each at least)
            t = time.perf_counter()
            got = run(base, rl, pool)
            seconds = time.perf_counter() - t
            pool.close()
            one = one or seconds
            print(f"  {f'Ray, {n} worker(s) x 1 thread':<28} {seconds:7.1f} s {tokens / seconds:9.0f} tok/s   "
                  f"speed-up over 1 worker {one / seconds:4.2f}x   table identical: {got.equals(want)}")
    finally:
        if started:
            ray.shutdown()
