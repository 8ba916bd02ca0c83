"""The code location loads with every asset, partition and job the UI and the demo rely on."""

import dagster as dg

from orchestration.definitions import defs


def test_definitions_load_with_every_asset_and_job():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {"problems", "base_model", "base_rollouts", "base_scores", "checkpoints", "rollouts",
                    "token_shifts", "scores", "summaries"}
    for name in ("base_job", "checkpoint_job"):
        assert defs.resolve_job_def(name) is not None
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert all(s.code_version for s in specs.values())
    partitioned = {k for k, s in specs.items() if s.partitions_def is not None}
    assert partitioned == {"checkpoints", "rollouts", "token_shifts", "scores", "summaries"}
    assert isinstance(specs["rollouts"].partitions_def, dg.DynamicPartitionsDefinition)
    assert specs["rollouts"].partitions_def.name == "checkpoints"
