"""Checkpoint folders as other trainers name them: OpenRLHF's `global_step<n>_hf`, sharded safetensors,
and folders that look like checkpoints but hold nothing loadable, which are listed with the reason."""

import json
import shutil

from compute.checkpoints import discover_checkpoints, not_ready


def test_openrlhf_hf_folders_and_sharded_weights_are_found_with_their_step(small_world, tmp_path):
    """OpenRLHF saves `save_pretrained` output as `global_step<n>_hf/` (no underscore before n); it used to
    get a key from the folder name and no step."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = small_world / "base"
    for name in ("global_step10_hf", "global_step_20"):
        shutil.copytree(base, tmp_path / name)
    model = AutoModelForCausalLM.from_pretrained(base)
    model.save_pretrained(tmp_path / "checkpoint-30", max_shard_size="40KB")  # as HF Trainer shards big models
    AutoTokenizer.from_pretrained(base).save_pretrained(tmp_path / "checkpoint-30")
    assert json.loads((tmp_path / "checkpoint-30" / "model.safetensors.index.json").read_text())["weight_map"]
    found = discover_checkpoints(str(tmp_path))
    assert [(c.key, c.step, c.layout, c.problem) for c in found] == [
        ("rl-step-000010", 10, "hf", None), ("rl-step-000020", 20, "hf", None), ("rl-step-000030", 30, "hf", None)]
    assert all(not_ready(c) is None for c in found)


def test_a_deepspeed_folder_is_listed_with_the_command_that_converts_it(tmp_path):
    """OpenRLHF's own checkpoints (DeepSpeed ZeRO shards) cannot be loaded: said, not skipped."""
    step = tmp_path / "global_step40"
    step.mkdir()
    for name in ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_to_fp32.py"):
        (step / name).write_bytes(b"x")
    (tmp_path / "logs").mkdir()  # not named like a checkpoint: not one
    [found] = discover_checkpoints(str(tmp_path))
    assert (found.key, found.step, found.layout) == ("rl-step-000040", 40, "unknown")
    assert "DeepSpeed ZeRO" in not_ready(found) and "zero_to_fp32.py" in not_ready(found)
    assert "mp_rank_00_model_states.pt" in found.problem  # what was found


def test_a_checkpoint_folder_without_a_model_says_what_it_holds(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text("{}")
    [found] = discover_checkpoints(str(tmp_path))
    assert found.layout == "unknown" and "found: trainer_state.json" in found.problem
    assert "adapter_config.json" in found.problem  # the layouts it would accept
