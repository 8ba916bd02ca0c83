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

    def call(self, fn: Callable, models: Sequence, *args): ...

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list: ...


class Local:
    """Everything in this process, with the models as loaded here."""

    workers, lost = 1, 0

    def call(self, fn: Callable, models: Sequence, *args):
        return fn(*models, *args)

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list:
        return [fn(*models, *shard) for shard in shards]


LOCAL = Local()


def slices(n_jobs: int, rows: int, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges covering `n_jobs` jobs, each a run of whole batches of `rows` jobs: one range for one
    worker, else about SHARDS_PER_WORKER per worker (never more than there are batches)."""
    if n_jobs <= 0:
        return []
    batches = math.ceil(n_jobs / rows)
    shards = 1 if workers <= 1 else min(batches, workers * SHARDS_PER_WORKER)
    per = math.ceil(batches / shards) * rows
    return [(lo, min(lo + per, n_jobs)) for lo in range(0, n_jobs, per)]
