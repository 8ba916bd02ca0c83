"""The code location: `dagster dev -m orchestration.definitions` loads `defs`."""

import dagster as dg

from assets import cross_sampling, inputs, report, rollouts, scores, summaries, token_shifts, trend
from orchestration.jobs import base_job, checkpoint_job, report_job, trend_job
from orchestration.resources import default_resources
from orchestration.schedules import reanalysis_schedule
from orchestration.sensors import checkpoint_sensor, trend_automation

ASSET_MODULES = [inputs, rollouts, token_shifts, scores, summaries, cross_sampling, trend, report]

defs = dg.Definitions(
    assets=dg.load_assets_from_modules(ASSET_MODULES),
    jobs=[base_job, checkpoint_job, trend_job, report_job],
    sensors=[checkpoint_sensor, trend_automation],
    schedules=[reanalysis_schedule],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
