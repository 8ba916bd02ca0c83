"""The study resource: overrides of the study's settings for one run (Dagster run config), on top of the
environment (`compute.settings`). Its fields are made from `Settings`, so the configuration is declared once;
`lake_url` is the lake IO manager's. Loaded models are cached across the run's assets.

The model-bound steps get their models and the pool that runs their shards from `workers`: this process's, or,
with RAY_ADDRESS set, a Ray cluster's (connected through dagster-ray's `LocalRay`, which `ray.init`s at
RAY_ADDRESS; `compute.raypool`), kept for the run so that its workers load each model once."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Callable
from functools import lru_cache

import dagster as dg
from pydantic import PrivateAttr

from compute.listing import listing_fingerprint
from compute.models import LoadedModel, load_handle, load_model
from compute.settings import Settings, env_name, from_env
from compute.shards import LOCAL, Pool

# not run settings: the lake is the IO manager's (`wiring.io_manager`); the sensor's interval and the schedule's
# cron are the code location's, read when it loads
OWNED_ELSEWHERE = ("lake_url", "sensor_interval_s", "reanalysis_cron")


class _Study(dg.ConfigurableResource):
    """What to analyse and how. A field left unset (None) takes its environment variable, read when the run
    starts (`compute.settings.from_env`); run config can override any subset of them."""

    def settings(self) -> Settings:
        """The run's settings: the environment, then the fields set here."""
        given = {k: v for k in type(self).model_fields if (v := getattr(self, k)) is not None}
        return dataclasses.replace(from_env(), **given)

    _cluster: tuple | None = PrivateAttr(default=None)  # (dagster-ray resource, compute.raypool.RayPool)
    _threads: int = PrivateAttr(default=0)  # torch's threads before this run shared them out (0: not shared)

    def model(self, path: str) -> LoadedModel:
        return _cached_model(path, _folder_stamp(path))

    def workers(self, context) -> Workers:
        """Where the model-bound work of this run goes: this process, or the Ray cluster at RAY_ADDRESS
        (connected on first use, with the step's `context` for dagster-ray's log lines)."""
        cfg = self.settings()
        if not cfg.ray_address:
            # the share again: other runs may have started or ended since the last step
            self.share_cores(context.instance, context.run_id, context.log, cfg.torch_threads)
            return Workers(LOCAL, self.model, (LOCAL.lost, len(LOCAL.served)))
        if self._cluster is None:
            from dagster_ray import LocalRay

            from compute.raypool import RayPool

            _check_answers(cfg.ray_address)
            ray = LocalRay()
            given = os.environ.get("RAY_ADDRESS")
            os.environ["RAY_ADDRESS"] = cfg.ray_address  # LocalRay's ray.init() connects where RAY_ADDRESS points
            try:
                ray.connect(context)
            finally:  # the run's setting, not the process's: put the environment back
                if given is None:
                    del os.environ["RAY_ADDRESS"]
                else:
                    os.environ["RAY_ADDRESS"] = given
            try:
                pool = RayPool(cfg.ray_workers, cfg.ray_worker_gpus, cfg.ray_worker_cpus)
            except BaseException:
                ray.cleanup(context, None)
                raise
            self._cluster = (ray, pool)
            context.log.info(f"model-bound work on the Ray cluster at {cfg.ray_address}: {pool.workers} workers "
                             f"of {cfg.ray_worker_gpus:g} GPU and {cfg.ray_worker_cpus:g} CPU each")
        pool = self._cluster[1]
        return Workers(pool, lambda path: _cached_handle(path, _folder_stamp(path)), (pool.lost, len(pool.served)))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Torch in this run's process takes its share of the cores (`share_cores`). Nothing for a sensor's or a
        schedule's tick, which runs no model."""
        if context.dagster_run is None:
            return
        try:
            threads = self.settings().torch_threads
        except ValueError:
            return  # a bad setting: the steps that read the settings say so, in one message
        self.share_cores(context.instance, context.dagster_run.run_id, context.log, threads)

    def share_cores(self, instance, run_id: str | None, log, threads: int) -> None:
        """Torch's threads for this run: its share of the cores among the runs going on now
        (`compute.sizing.share_threads`), since runs that each take every core slow each other several-fold. Set
        when the run starts and again at each model-bound step (`workers`), as other runs start or end; the count
        found before is given back at the run's end (an in-process run leaves its process as it found it). The
        run's log says each change. `threads`: SHIFTLAKE_TORCH_THREADS (0: the share)."""
        concurrent = _concurrent_runs(instance, run_id)
        if concurrent <= 1 and threads <= 0 and not self._threads:
            return  # alone and never shared: torch as it was
        import torch  # not at the code location's import

        from compute.sizing import share_threads

        before, first = torch.get_num_threads(), not self._threads
        self._threads = self._threads or before
        share = share_threads(concurrent, threads)
        if share != before or first:
            why = (f"{env_name('torch_threads')}={threads}" if threads > 0 else "alone now" if concurrent <= 1
                   else f"the cores shared among the {concurrent} runs going on")
            log.info(f"torch threads in this run: {share} ({why})")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._threads:  # the count before the run: an in-process run leaves its process as it found it
            import torch

            torch.set_num_threads(self._threads)
            self._threads = 0
        if self._cluster is not None:
            ray, pool = self._cluster
            self._cluster = None
            try:
                pool.close()
            finally:
                ray.cleanup(context, None)

    @classmethod
    def from_settings(cls, settings: Settings) -> _Study:
        return cls(**{k: getattr(settings, k) for k in cls.model_fields})


IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _concurrent_runs(instance, run_id: str | None) -> int:
    """How many runs go on with run `run_id` on `instance`: it and those starting or started now, at most the run
    queue's max_concurrent_runs (where it has a bound)."""
    going = 1 + sum(other != run_id for other in instance.get_run_ids(dg.RunsFilter(statuses=IN_PROGRESS)))
    queue = getattr(instance.run_coordinator, "get_run_queue_config", None)
    bound = queue().max_concurrent_runs if queue else -1
    return min(going, bound) if bound > 0 else going


def _check_answers(address: str, timeout: float = 10.0) -> None:
    """One clear error when nothing listens at a Ray address (host:port, or ray://host:port); ray.init would
    retry for minutes in silence."""
    import socket

    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"no Ray cluster answers at RAY_ADDRESS={address} ({exc}): start one (ray start "
                              "--head), fix the address, or unset RAY_ADDRESS to run in this process") from None


@dataclasses.dataclass(frozen=True)
class Workers:
    """A run's model-bound work: `pool` runs the shards (`compute.shards`), `model(path)` gives what the step
    holds of a model (loaded here, or a weightless handle when the pool's workers hold the weights)."""
    pool: Pool
    model: Callable[[str], LoadedModel]
    since: tuple[int, int] = (0, 0)  # the pool's (lost, served) when the step began: the pool outlives a step

    def metadata(self) -> dict:
        """What ran the step's shards, for its materialisation: the workers that returned one, and the shards run
        again because their worker died."""
        lost, served = self.since
        return {"shard_workers": len(set(self.pool.served[served:])), "shards_rerun": self.pool.lost - lost}


def _override_fields() -> dict:
    hints = typing.get_type_hints(Settings)
    names = [f.name for f in dataclasses.fields(Settings) if f.name not in OWNED_ELSEWHERE]
    return {"__annotations__": {n: hints[n] | None for n in names}, **{n: None for n in names}}


StudyResource = type("StudyResource", (_Study,), {"__module__": __name__, "__doc__": _Study.__doc__,
                                                  **_override_fields()})


def _folder_stamp(path: str) -> str:
    """Names, sizes and versions of the model's files: a changed folder (local or S3) is loaded again."""
    try:
        return listing_fingerprint(path)
    except FileNotFoundError:
        return ""


@lru_cache(maxsize=2)
def _cached_model(path: str, stamp: str) -> LoadedModel:
    """Base and one RL model stay loaded across the assets of one process; a changed folder reloads."""
    return load_model(path)


@lru_cache(maxsize=4)
def _cached_handle(path: str, stamp: str) -> LoadedModel:
    return load_handle(path)
