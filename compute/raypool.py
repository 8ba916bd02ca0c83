"""Shards on a Ray cluster (`compute.shards`): Ray actors, one per GPU (`gpus` each; `cpus` each, the torch threads
they use), each loading the models it is asked for once (by `LoadedModel.uri`) and serving shard after shard.

Failures heal: a shard whose actor died (its node killed, its process OOM-killed) goes back to the queue and runs
on another actor, at most `retries` times, and a replacement actor is asked for; an error raised by the work itself is the run's error, raised once. A
shard goes only to an actor that has started, so runs competing for the cluster's GPUs never wait on each other:
each keeps what it holds and gets more as others finish. The driver collects every result before returning, so
what the caller writes is written once. Needs `ray` (imported on first use); the caller connects (`ray.init`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence

KEEP_MODELS = 3  # models an actor keeps loaded: the base, a checkpoint, and the next checkpoint's as it starts


class _ShardWorker:
    """A Ray actor's state: its loaded models, by URI."""

    def __init__(self, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.models: dict = {}

    def ready(self) -> str:
        return os.uname().nodename + f":{os.getpid()}"

    def run(self, fn: Callable, uris: Sequence[str], args: tuple):
        return fn(*[self._model(uri) for uri in uris], *args)

    def _model(self, uri: str):
        from compute.models import load_model

        if uri not in self.models:
            while len(self.models) >= KEEP_MODELS:
                self.models.pop(next(iter(self.models)))
            self.models[uri] = load_model(uri)
        return self.models[uri]


class RayPool:
    """`compute.shards.Pool` on the connected Ray cluster: `workers` actors (0: as many as the cluster has GPUs
    for, or CPUs when `gpus` is 0)."""

    def __init__(self, workers: int = 0, gpus: float = 1.0, cpus: float = 1.0, retries: int = 3):
        import ray

        self._ray = ray
        self.gpus, self.cpus, self.retries = gpus, cpus, retries
        if workers <= 0:
            total = ray.cluster_resources()
            workers = int(total.get("GPU", 0) // gpus) if gpus else int(total.get("CPU", 0) // max(cpus, 1e-9))
            if workers < 1:
                raise RuntimeError(f"the Ray cluster has no room for a shard worker ({gpus:g} GPU, {cpus:g} CPU each; "
                                   f"it has {dict(total)}): add GPU nodes, or set SHIFTLAKE_RAY_WORKER_GPUS=0 to run "
                                   "on CPUs")
        self.workers = workers
        self._ready: list = []  # actors that started, free or busy
        self._starting: dict = {}  # ready() ref -> actor
        self.lost = 0  # shards rerun because their actor died (a benchmark or test reads it)

    def _spawn(self) -> None:
        actor = self._ray.remote(_ShardWorker).options(num_gpus=self.gpus, num_cpus=self.cpus, max_restarts=0)
        handle = actor.remote(max(1, int(self.cpus)))
        self._starting[handle.ready.remote()] = handle

    def call(self, fn: Callable, models: Sequence, *args):
        return self.map(fn, models, [args])[0]

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list:
        ray = self._ray
        uris = [m.uri or m.path for m in models]
        while len(self._ready) + len(self._starting) < min(self.workers, len(shards)):
            self._spawn()
        pending, results, tries = deque(range(len(shards))), [None] * len(shards), [0] * len(shards)
        idle, running = list(self._ready), {}
        while pending or running:
            while idle and pending:
                actor, i = idle.pop(), pending.popleft()
                running[actor.run.remote(fn, uris, shards[i])] = (actor, i)
            done, _ = ray.wait([*running, *self._starting], num_returns=1)
            ref = done[0]
            if ref in self._starting:
                actor = self._starting.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:
                    continue  # died while starting; another is spawned when none is left
                self._ready.append(actor)
                idle.append(actor)
                continue
            actor, i = running.pop(ref)
            try:
                results[i] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the work raised: the run's error, as it was raised there
                raise (exc.cause if isinstance(exc.cause, Exception) else exc.as_instanceof_cause()) from None
            except ray.exceptions.RayError as exc:  # the actor or its node died: rerun the shard elsewhere
                self._ready.remove(actor)
                tries[i] += 1
                self.lost += 1
                if tries[i] > self.retries:
                    raise RuntimeError(f"shard {i} lost its Ray worker {tries[i]} times (last: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0]}); is the cluster losing nodes?") from None
                pending.appendleft(i)
                self._spawn()  # a replacement, used once the cluster has room for it
                continue
            idle.append(actor)
        return results

    def close(self) -> None:
        """Stop the actors (their GPUs go back to the cluster)."""
        for actor in [*self._ready, *self._starting.values()]:
            self._ray.kill(actor)
        self._ready, self._starting = [], {}
