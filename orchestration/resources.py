"""The study resource: what to analyse and how to sample, defaults from the environment
(`compute.settings`), overridable per run through Dagster run config."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import dagster as dg

from compute.models import LoadedModel, load_model
from compute.paired import PairedParams
from compute.sampling import SamplingParams
from compute.settings import Settings, from_env


class StudyResource(dg.ConfigurableResource):
    base_model: str
    checkpoints_url: str
    problems_url: str
    verifier: str
    samples_per_problem: int
    max_problems: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    batch_size: int
    chunk_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StudyResource:
        fields = {k: getattr(settings, k) for k in cls.model_fields}
        return cls(**fields)

    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens)

    def paired(self) -> PairedParams:
        return PairedParams(self.batch_size, self.chunk_tokens)

    def model(self, path: str) -> LoadedModel:
        return _cached_model(path, _folder_stamp(path))


def _folder_stamp(path: str) -> tuple:
    root = Path(path)
    if not root.is_dir():
        return ()
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in root.iterdir() if p.is_file()))


@lru_cache(maxsize=2)
def _cached_model(path: str, stamp: tuple) -> LoadedModel:
    """Base and one RL model stay loaded across the assets of one process; a changed folder reloads."""
    return load_model(path)


def default_resources() -> dict:
    from orchestration.io_manager import LakeIOManager

    settings = from_env()
    return {"io_manager": LakeIOManager(lake_url=settings.lake_url), "study": StudyResource.from_settings(settings)}
