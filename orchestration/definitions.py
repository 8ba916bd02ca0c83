"""The code location: `dagster dev -m orchestration.definitions` loads `defs`."""

import dagster as dg

from assets import cross_sampling, inputs, rollouts, scores, summaries, token_shifts
from orchestration.jobs import base_job, checkpoint_job
from orchestration.resources import default_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([inputs, rollouts, token_shifts, scores, summaries, cross_sampling]),
    jobs=[base_job, checkpoint_job],
    resources=default_resources(),
    executor=dg.in_process_executor,
)
