"""The study resource: overrides of the study's settings for one run (Dagster run config), on top of the
environment (`compute.settings`). Its fields are made from `Settings`, so the configuration is declared once;
`lake_url` is the lake IO manager's. Loaded models are cached across the run's assets."""

from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache

import dagster as dg

from compute.listing import listing_fingerprint
from compute.models import LoadedModel, load_model
from compute.settings import Settings, from_env

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

    def model(self, path: str) -> LoadedModel:
        return _cached_model(path, _folder_stamp(path))

    @classmethod
    def from_settings(cls, settings: Settings) -> _Study:
        return cls(**{k: getattr(settings, k) for k in cls.model_fields})


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
