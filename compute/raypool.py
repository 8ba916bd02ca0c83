"""Shards on a Ray cluster (`compute.shards`): Ray actors, one per GPU (`gpus` each; `cpus` each, the torch threads
they use; with `gpus` 0 they run on the CPU), each loading the models it is asked for once (by `LoadedModel.uri`)
and serving shard after shard.

Failures heal: a shard whose actor died (its node killed, its process OOM-killed) goes back to the queue and runs
on another actor, at most `retries` times, and a replacement actor is asked for; an error raised by the work itself
is the run's error, raised as it was raised there (the worker's traceback in its notes). Every actor is asked for
at the first shard, so that they start while the first steps run; a shard goes only to an actor that has started,
so runs competing for the cluster's GPUs never wait on each other: each keeps what it holds and gets more as others
finish. When no actor has started within `start_timeout_s` (no free GPU, or actors that fail to start), one
message says so. The driver collects every result before returning, so what the caller writes
is written once. Needs `ray` (imported on first use); the caller connects (`ray.init`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence

KEEP_MODELS = 3  # models an actor keeps loaded: the base, a checkpoint, and the next checkpoint's as it starts
START_TIMEOUT_S = 900.0  # an autoscaler adding a GPU node takes minutes


class _ShardWorker:
    """A Ray actor's state: its loaded models, by URI, least recently used first."""

    def __init__(self, threads: int, cpu_only: bool):
        import torch

        torch.set_num_threads(max(1, threads))
        self.device = torch.device("cpu") if cpu_only else None  # a GPU node's CUDA is not ours without a GPU
        self.models: dict = {}

    def ready(self) -> str:
        return os.uname().nodename + f":{os.getpid()}"

    def run(self, fn: Callable, uris: Sequence[str], args: tuple):
        return self.ready(), fn(*[self._model(uri) for uri in uris], *args)

    def _model(self, uri: str):
        from compute.models import load_model

        if uri in self.models:
            self.models[uri] = self.models.pop(uri)
        else:
            while len(self.models) >= KEEP_MODELS:
                self.models.pop(next(iter(self.models)))
                _free_cuda_cache()
            self.models[uri] = load_model(uri, self.device)
        return self.models[uri]


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class RayPool:
    """`compute.shards.Pool` on the connected Ray cluster: `workers` actors (0: as many as the cluster has GPUs
    for now, or CPUs when `gpus` is 0; at least one, which asks an autoscaler for a node)."""

    def __init__(self, workers: int = 0, gpus: float = 1.0, cpus: float = 1.0, retries: int = 3,
                 start_timeout_s: float = START_TIMEOUT_S):
        import ray

        self._ray = ray
        self.gpus, self.cpus, self.retries, self.start_timeout_s = gpus, cpus, retries, start_timeout_s
        if workers <= 0:
            total = ray.cluster_resources()
            workers = int(total.get("GPU", 0) // gpus) if gpus else int(total.get("CPU", 0) // max(cpus, 1e-9))
        self.workers = max(1, workers)
        self._ready: list = []  # actors that started, free or busy
        self._starting: dict = {}  # ready() ref -> actor
        self.lost = 0  # shards run again because their actor died
        self.served: list[str] = []  # the worker (node:pid) that returned each shard, in order

    def _spawn(self) -> None:
        actor = self._ray.remote(_ShardWorker).options(num_gpus=self.gpus, num_cpus=self.cpus, max_restarts=0)
        handle = actor.remote(max(1, int(self.cpus)), not self.gpus)
        self._starting[handle.ready.remote()] = handle

    def _fill(self, n: int) -> None:
        """Ask for actors until `n` have started or are starting."""
        while len(self._ready) + len(self._starting) < n:
            self._spawn()

    def start(self) -> None:
        """Start every worker now and wait for them (a benchmark times decoding, not starting)."""
        self._fill(self.workers)
        refs = list(self._starting)
        self._ray.get(refs)
        self._ready += [self._starting.pop(ref) for ref in refs]

    def call(self, fn: Callable, models: Sequence, *args):
        return self.map(fn, models, [args])[0]

    def map(self, fn: Callable, models: Sequence, shards: Sequence[tuple]) -> list:
        ray = self._ray
        uris = [m.uri or m.path for m in models]
        self._fill(self.workers)  # all of them from the first shard on: the run's later steps find them started
        pending, results, tries = deque(range(len(shards))), [None] * len(shards), [0] * len(shards)
        idle, running, failed_starts = list(self._ready), {}, []
        while pending or running:
            while idle and pending:
                actor, i = idle.pop(), pending.popleft()
                running[actor.run.remote(fn, uris, shards[i])] = (actor, i)
            if not running and not self._starting:
                self._spawn()  # every actor is gone: ask for another
            done = self._wait([*running, *self._starting], forever=bool(running))
            if not done:
                raise TimeoutError(
                    f"no Ray worker started within {self.start_timeout_s:.0f} s ({self.gpus:g} GPU and {self.cpus:g} "
                    f"CPU each; the cluster has {dict(ray.available_resources())} free"
                    + (f"; starts failed: {failed_starts[-1]}" if failed_starts else "")
                    + "). Free or add GPUs, or lower SHIFTLAKE_RAY_WORKER_GPUS")
            ref = done[0]
            if ref in self._starting:
                actor = self._starting.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayError as exc:  # it died while starting: another is asked for above
                    failed_starts.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    if len(failed_starts) > self.retries:
                        raise RuntimeError(f"Ray workers failed to start {len(failed_starts)} times; last: "
                                           f"{failed_starts[-1]}") from None
                    continue
                self._ready.append(actor)
                idle.append(actor)
                continue
            actor, i = running.pop(ref)
            try:
                worker, results[i] = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the work raised: the run's error, as it was raised there
                cause = exc.cause if isinstance(exc.cause, Exception) else exc.as_instanceof_cause()
                cause.add_note(f"raised on a Ray worker:\n{exc}")
                raise cause from None
            except ray.exceptions.RayError as exc:  # the actor or its node died: rerun the shard elsewhere
                self._ready.remove(actor)
                ray.kill(actor, no_restart=True)  # if it is only unreachable, its GPU goes back all the same
                tries[i] += 1
                self.lost += 1
                if tries[i] > self.retries:
                    raise RuntimeError(f"shard {i} lost its Ray worker {tries[i]} times (last: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[0]}); is the cluster losing nodes?") from None
                pending.appendleft(i)
                self._spawn()  # a replacement, used once the cluster has room for it
                continue
            self.served.append(worker)
            idle.append(actor)
        return results

    def _wait(self, refs: list, forever: bool) -> list:
        """The first of `refs` to finish, in waits of a second (Ctrl-C and signals are handled between them);
        [] after `start_timeout_s` unless `forever` (a shard running: it takes what it takes)."""
        deadline = time.monotonic() + self.start_timeout_s
        while forever or time.monotonic() < deadline:
            done, _ = self._ray.wait(refs, num_returns=1, timeout=1.0)
            if done:
                return done
        return []

    def close(self) -> None:
        """Stop the actors (their GPUs go back to the cluster)."""
        for actor in [*self._ready, *self._starting.values()]:
            self._ray.kill(actor)
        self._ready, self._starting = [], {}
