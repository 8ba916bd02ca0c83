"""The code location: `dagster dev -m orchestration.definitions` loads `defs`. The top of the house: it
imports every layer below and nothing imports it (the application loads it by name, as Dagster's tools do).
The environment is read here once, for what must be fixed when the location loads: the lake, the sensor's
interval, the schedule's cron. The study's settings are read again when each run starts."""

import dagster as dg

import assets
from compute.settings import from_env
from orchestration.automation.jobs import JOBS
from orchestration.automation.schedules import reanalysis_schedule
from orchestration.automation.sensors import checkpoint_sensor, trend_automation
from orchestration.wiring.io_manager import LakeIOManager, readers_of
from orchestration.wiring.resources import StudyResource

settings = from_env()
asset_defs = dg.load_assets_from_package_module(assets)
readers = readers_of(spec for a in asset_defs for spec in a.specs)

defs = dg.Definitions(
    assets=asset_defs,
    jobs=list(JOBS),
    sensors=[checkpoint_sensor(settings.sensor_interval_s), trend_automation(settings.sensor_interval_s)],
    schedules=[reanalysis_schedule(settings.reanalysis_cron)],
    resources={"io_manager": LakeIOManager(lake_url=settings.lake_url, readers=readers), "study": StudyResource()},
    executor=dg.in_process_executor,
)
