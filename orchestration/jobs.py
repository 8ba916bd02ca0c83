"""Jobs: the base model's tables once (`base_job`), then one run per checkpoint partition (`checkpoint_job`)."""

import dagster as dg


base_job = dg.define_asset_job(
    "base_job", selection=dg.AssetSelection.assets("problems", "base_model", "base_rollouts", "base_scores"),
    description="Problems, the base model's row, its rollouts and their scores: computed once.")

checkpoint_job = dg.define_asset_job(
    "checkpoint_job",
    selection=dg.AssetSelection.assets("checkpoints", "rollouts", "token_shifts", "scores", "summaries",
                                       "cross_samples", "cross_scores", "cross_summaries"),
    description="Everything about one RL checkpoint, one partition per run.")

trend_job = dg.define_asset_job(
    "trend_job", selection=dg.AssetSelection.assets("trend"),
    description="The trend across every analysed checkpoint (also refreshed by declarative automation).")

report_job = dg.define_asset_job(
    "report_job", selection=dg.AssetSelection.assets("report"),
    description="The HTML report of one checkpoint (also refreshed by declarative automation).")
