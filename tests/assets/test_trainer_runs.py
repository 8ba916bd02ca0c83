"""A TRL run's output folder as CHECKPOINTS_URL: its LoRA checkpoints are merged into the base, kept in the
model store and analysed like any checkpoint (the README's worked example)."""

import dagster as dg
import polars as pl

from compute import lake as lakeio
from tests.conftest import materialise, study_settings


def test_a_trl_lora_run_is_analysed(small_world, trainer_roots, tmp_path):
    settings = study_settings(small_world, tmp_path / "lake", checkpoints_url=str(trainer_roots["trl_lora"]))
    with dg.DagsterInstance.ephemeral() as instance:
        from orchestration.app.demo import register_checkpoints

        keys = register_checkpoints(instance, settings.checkpoints_url)
        assert keys == ["rl-step-000001", "rl-step-000002"]
        assert materialise(settings, instance, ["problems", "base_model", "base_rollouts", "base_scores"]).success
        assert materialise(settings, instance, ["checkpoints", "rollouts", "token_shifts"], keys[-1]).success
    row = lakeio.read_partition(settings.lake_url, "checkpoints", f"checkpoint={keys[-1]}")
    assert row["layout"][0] == "peft" and row["uri"][0] == str(trainer_roots["trl_lora"] / "checkpoint-2")
    assert row["model_uri"][0].startswith(str(tmp_path / "lake" / "models"))
    shifts = lakeio.read_partition(settings.lake_url, "token_shifts", f"checkpoint={keys[-1]}")
    # the adapter moved the weights (tests/trainers.py trains with a high learning rate): the merged model is
    # not the base, so some token's distribution differs
    assert shifts.height > 0 and shifts.select(pl.col("js").max()).item() > 1e-4
