"""Model-bound work in shards: a stage's jobs (rows to sample, decode in lockstep or score) cut into slices of
whole batches, each run by a worker that holds the models.

A pool runs them: `Local` in this process (one shard: the study as it always ran), or `compute.raypool.RayPool`
on a Ray cluster, one worker per GPU, each loading its models once and serving many shards. A shard is the same
batches whichever pool runs it and every row draws from its own seed, so the tables are identical row for row
whatever the pool and however many workers. Knows nothing about Dagster, tables or the lake.

A pool's `fn` is an importable function `fn(*models, *args)`: `models` are `compute.models.LoadedModel`s here,
and the workers' own copies of the same models (loaded from `LoadedModel.uri`) on a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

SHARDS_PER_WORKER = 4  # a lost or slow shard costs a quarter of a worker's share, and the last ones balance


class Pool(Protocol):
    workers: int
    lost: int  # shards run again because their worker died
    served: list[str]  # the worker that returned each shard, in order

    def call(self, fn: Callable, models: Sequence, *args): ...

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list: ...


class Local:
    """Everything in this process, with the models as loaded here."""

    workers, lost = 1, 0

    def __init__(self):
        self.served: list[str] = []

    def call(self, fn: Callable, models: Sequence, *args):
        return fn(*models, *args)

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list:
        self.served += ["this process"] * len(shards)
        return [fn(*models, *shard) for shard in shards]


LOCAL = Local()


def slices(n_jobs: int, rows: int, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges covering `n_jobs` jobs, each a run of whole batches of `rows` jobs: one range for one
    worker, else SHARDS_PER_WORKER per worker (as many as there are batches when fewer), their batches spread
    evenly (shards differ by one batch at most)."""
    if n_jobs <= 0:
        return []
    batches = math.ceil(n_jobs / rows)
    shards = 1 if workers <= 1 else min(batches, workers * SHARDS_PER_WORKER)
    bounds = [min(n_jobs, (k * batches // shards) * rows) for k in range(shards + 1)]
    return list(zip(bounds, bounds[1:]))
