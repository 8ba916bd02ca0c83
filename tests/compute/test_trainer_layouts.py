"""The checkpoint folders tests/trainers.py produces have the layouts the trainers are known to write: TRL's
`checkpoint-<n>/` (full weights or a LoRA adapter, with Trainer's state files, rotated under save_total_limit),
HF's sharded save_pretrained, OpenRLHF's `global_step<n>_hf/`. `expected_layouts` states, from what the
trainer was asked to do, what checkpoint discovery must report for each of these folders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from compute.peft_merge import adapter_info

TRAINER_STATE = {"trainer_state.json", "training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"}
TOKENIZER = {"tokenizer.json", "tokenizer_config.json"}
_NAMES = [
    (re.compile(r"checkpoint-(\d+)"), None),  # TRL / HF Trainer: full model or adapter, by its files
    (re.compile(r"global_step(\d+)_hf"), "hf"),  # OpenRLHF --save_hf_ckpt
]


def expected_layouts(root: str | Path) -> dict[str, tuple[int | None, str]]:
    """Folder name -> (step, layout) that discovery must report for the checkpoints directly under `root`, for the
    folders tests/trainers.py writes: layout "peft" for an adapter (adapter_config.json, no config.json), "hf"
    for a model folder; the step from the trainer's naming, cross-checked against trainer_state.json where the
    trainer wrote one. Files (TRL's run-level README.md) and other folders are not checkpoints."""
    expected = {}
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        for pattern, layout in _NAMES:
            if m := pattern.fullmatch(folder.name):
                step = int(m.group(1))
                if (folder / "trainer_state.json").exists():
                    assert json.loads((folder / "trainer_state.json").read_text())["global_step"] == step
                peft = (folder / "adapter_config.json").exists() and not (folder / "config.json").exists()
                expected[folder.name] = (step, layout or ("peft" if peft else "hf"))
                break
        else:
            if (folder / "config.json").exists():  # a plain save_pretrained folder: no step
                expected[folder.name] = (None, "hf")
    return expected


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.is_file()}


def test_trl_rotation_keeps_the_last_two(trainer_roots):
    """save_steps=1 over 3 steps with save_total_limit=2: Trainer deletes checkpoint-1 when it saves
    checkpoint-3. Each full checkpoint holds the weights, tokenizer, generation config and Trainer's state."""
    root = trainer_roots["trl_full"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["checkpoint-2", "checkpoint-3"]
    assert "README.md" in files(root)  # TRL's model card for the run, beside the checkpoints
    for name in ("checkpoint-2", "checkpoint-3"):
        got = files(root / name)
        want = {"config.json", "generation_config.json", "model.safetensors"} | TOKENIZER | TRAINER_STATE
        assert got == want, got ^ want


def test_trl_lora_checkpoints_are_adapters_without_config(trainer_roots):
    """With a peft_config TRL saves the adapter only: no config.json, no generation_config.json; PEFT's own
    README.md inside each checkpoint; the tokenizer and Trainer's state as for a full model."""
    root = trainer_roots["trl_lora"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["checkpoint-1", "checkpoint-2"]
    for name in ("checkpoint-1", "checkpoint-2"):
        got = files(root / name)
        want = {"adapter_config.json", "adapter_model.safetensors", "README.md"} | TOKENIZER | TRAINER_STATE
        assert got == want, got ^ want
        info = adapter_info(root / name)
        assert info.peft_type == "LORA" and info.mergeable


def test_sharded_checkpoint_has_an_index_and_every_shard(trainer_roots, small_world):
    """save_pretrained with a 20KB shard size: an index naming every tensor's shard, several shards, no single
    model.safetensors; the shards load back into the same model."""
    from transformers import AutoModelForCausalLM

    for folder in (trainer_roots["sharded"] / "checkpoint-4", trainer_roots["openrlhf"] / "global_step4_hf"):
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        shards = set(index["weight_map"].values())
        assert len(shards) > 1 and "model.safetensors" not in files(folder)
        assert all(re.fullmatch(rf"model-\d{{5}}-of-{len(shards):05d}\.safetensors", s) for s in shards)
        assert shards <= files(folder) and TOKENIZER <= files(folder)
        source = sorted((small_world / "checkpoints").iterdir())[-1]
        got = AutoModelForCausalLM.from_pretrained(folder).state_dict()
        want = AutoModelForCausalLM.from_pretrained(source).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_openrlhf_names_its_hf_folders_global_step_n_hf(trainer_roots):
    """OpenRLHF writes `{ckpt_path}/global_step{n}_hf` (no underscore before n, unlike verl's global_step_<n>)."""
    root = trainer_roots["openrlhf"]
    assert sorted(p.name for p in root.iterdir()) == ["global_step2_hf", "global_step4_hf"]
    assert {"config.json", "generation_config.json", "model.safetensors"} | TOKENIZER <= files(root / "global_step2_hf")


@pytest.mark.parametrize("name,want", [
    ("trl_full", {"checkpoint-2": (2, "hf"), "checkpoint-3": (3, "hf")}),  # checkpoint-1 rotated away
    ("trl_lora", {"checkpoint-1": (1, "peft"), "checkpoint-2": (2, "peft")}),
    ("sharded", {"checkpoint-4": (4, "hf")}),  # sharded weights are still a plain HF folder
    ("openrlhf", {"global_step2_hf": (2, "hf"), "global_step4_hf": (4, "hf")}),
])
def test_expected_layouts(trainer_roots, name, want):
    assert expected_layouts(trainer_roots[name]) == want


@pytest.mark.parametrize("trainer", ["trl_full", "trl_lora", "sharded", "openrlhf"])
def test_discovery_reports_each_trainers_folders_with_step_and_layout(trainer_roots, trainer):
    """LoRA checkpoints used to be skipped without a word, OpenRLHF's `global_step<n>_hf` got no step."""
    from compute.checkpoints import checkpoint_key, discover_checkpoints, not_ready

    root = trainer_roots[trainer]
    found = discover_checkpoints(str(root))
    want = expected_layouts(root)
    assert {c.key: (c.step, c.layout) for c in found} == {checkpoint_key(name, step): (step, layout)
                                                         for name, (step, layout) in want.items()}
    assert all(c.problem is None and not_ready(c) is None for c in found)
