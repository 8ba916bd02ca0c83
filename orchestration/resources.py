"""The study resource: what to analyse and how to sample, defaults from the environment
(`compute.settings`), overridable per run through Dagster run config."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import dagster as dg

from compute import study as studies
from compute.checkpoints import listing_fingerprint
from compute.cross_sampling import CrossGrid, parse_eps
from compute.models import LoadedModel, load_model
from compute.paired import PairedParams
from compute.prompts import PromptSettings
from compute.sampling import SamplingParams
from compute.settings import Settings, env_name, from_env


class StudyResource(dg.ConfigurableResource):
    """What to analyse and how. A field left unset (None) takes its environment variable, read when the
    run starts (`compute.settings`), so run config can override any subset of fields."""

    base_model: str | None = None
    checkpoints_url: str | None = None
    problems_url: str | None = None
    verifier: str | None = None
    verify_timeout_s: float | None = None
    verify_workers: int | None = None
    samples_per_problem: int | None = None
    max_problems: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    prompt_template: str | None = None
    system_prompt: str | None = None
    stop: str | None = None
    seed: int | None = None
    batch_size: int | None = None
    chunk_tokens: int | None = None
    cross_batch_size: int | None = None
    cross_directions: str | None = None
    cross_eps_js: str | None = None
    cross_eps_delta_logp: str | None = None
    cross_eps_entropy: str | None = None
    cross_random_control: int | None = None
    cross_divergence_on: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StudyResource:
        return cls(**{k: getattr(settings, k) for k in cls.model_fields})

    def settings(self) -> Settings:
        given = {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}
        return dataclasses.replace(from_env(), **given)

    def sampling(self) -> SamplingParams:
        s = self.settings()
        return SamplingParams(s.temperature, s.top_p, s.max_new_tokens)

    def prompts(self) -> PromptSettings:
        """The prompt template and stop strings (`compute.prompts`); a bad setting fails here, with its variable."""
        s = self.settings()
        return PromptSettings.parse(s.prompt_template, s.system_prompt, s.stop)

    def paired(self) -> PairedParams:
        s = self.settings()
        return PairedParams(s.batch_size, s.chunk_tokens)

    def cross_grid(self) -> CrossGrid:
        s = self.settings()
        eps = tuple((name, parse_eps(getattr(s, f"cross_eps_{name}"), env_name(f"cross_eps_{name}")))
                    for name in ("js", "delta_logp", "entropy"))
        directions = tuple(d for d in s.cross_directions.replace(" ", "").split(",") if d)
        on = tuple((n, e) for n, e in eps if e)
        if not on:
            raise ValueError("every cross-sampling eps grid is empty (SHIFTLAKE_CROSS_EPS_JS, _DELTA_LOGP, _ENTROPY): "
                             "give at least one criterion its thresholds, e.g. SHIFTLAKE_CROSS_EPS_JS=0.01,0.1")
        random_control = bool(s.cross_random_control) and "js" in dict(on)  # it matches the js runs' budgets
        return CrossGrid(directions, on, random_control, s.cross_divergence_on)

    def score(self, frame, problems, keys: tuple[str, ...] = studies.ROLLOUT_KEYS):
        """Verdicts on `frame`'s responses (`compute.study.scores`) with the configured verifiers."""
        s = self.settings()
        return studies.scores(frame, problems, s.verifier, keys, s.verify_timeout_s, s.verify_workers)

    def model(self, path: str) -> LoadedModel:
        return _cached_model(path, _folder_stamp(path))


def _folder_stamp(path: str) -> str:
    """Names, sizes and versions of the model's files: a changed folder (local or S3) is loaded again."""
    try:
        return listing_fingerprint(path)
    except FileNotFoundError:
        return ""


@lru_cache(maxsize=2)
def _cached_model(path: str, stamp: tuple) -> LoadedModel:
    """Base and one RL model stay loaded across the assets of one process; a changed folder reloads."""
    return load_model(path)


def default_resources() -> dict:
    from orchestration.io_manager import LakeIOManager

    return {"io_manager": LakeIOManager(lake_url=from_env().lake_url), "study": StudyResource()}
