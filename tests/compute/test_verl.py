"""verl's default layout: real FSDP shards (torch's own FSDP1 and FSDP2 on CPU/gloo, two processes, saved per
rank with torch.save as verl does) merge back into exactly the model that was sharded, and every folder that
cannot be merged says what was found and what converts it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest
import torch
from safetensors.torch import load_file

from compute.checkpoints import incomplete_reason
from compute.verl import merge_verl_fsdp, merged_copy, verl_actor_folder
from tests.compute.verl_shards import VARIANTS, tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Every variant of tests/compute/verl_shards.py, written by two rank processes (spawn cost dominates)."""
    out = tmp_path_factory.mktemp("verl")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    ranks = [subprocess.Popen([sys.executable, "-m", "tests.compute.verl_shards", str(out), str(r), "2"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    for r, proc in enumerate(ranks):
        log, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"rank {r} failed:\n{log[-3000:]}"
    return out


def actor_of(shards: Path, variant: str) -> Path:
    return shards / variant / f"global_step_{VARIANTS[variant]['step']}" / "actor"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_merge_reproduces_the_sharded_model(shards, tmp_path, variant):
    """Guards the reassembly: FSDP2 shards the embedding on dim 1 (verl's placement fn, odd vocab), FSDP1 cuts
    dim 0 unevenly (51/50 rows), FSDP1 without a mesh saves ShardedTensors, HSDP replicates across its ddp
    mesh dim, world size 1 is one bf16 shard.
    A shard put back in the wrong order or dim changes a weight, so state dict and logits must be identical."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    spec = VARIANTS[variant]
    found = verl_actor_folder(str(actor_of(shards, variant).parent))
    world = 1 if variant.endswith("_w1") else 2
    assert (found.step, found.world_size, found.ranks, found.saved) == (spec["step"], world, tuple(range(world)), True)
    assert found.fsdp_version == (1 if variant.startswith("fsdp1") else 2) and found.mergeable

    merged = merge_verl_fsdp(found.actor, tmp_path / "merged")
    assert incomplete_reason(str(merged)) is None and not (tmp_path / "merged.partial").exists()
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    original = tiny_model(spec["tie"], spec["dtype"])
    got, want = model.state_dict(), original.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
    ids = torch.tensor([[17, 1, 11, 2, 12, 3, 18]])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, original(ids).logits)
    assert GenerationConfig.from_pretrained(merged).max_new_tokens == 7  # verl's huggingface/ files came along


def test_merged_copy_merges_once_into_the_model_cache(shards, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAKE_CACHE", str(tmp_path))
    first = merged_copy(str(actor_of(shards, "fsdp2")))
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert first.parent == tmp_path / "models" and first.name.startswith("verl-")
    assert merged_copy(str(actor_of(shards, "fsdp2").parent)) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_merges_from_an_fsspec_url(shards, tmp_path):
    """An S3 prefix goes through the same code as a local folder, only the URL differs (an in-memory
    filesystem stands in): the shards are streamed, not memory-mapped, and huggingface/ is fetched."""
    remote = f"/verl-{tmp_path.name}"
    fsspec.filesystem("memory").put(f"{shards / 'fsdp1'}/", remote, recursive=True)
    found = verl_actor_folder(f"memory://{remote}/global_step_1")
    assert found.actor == f"memory://{remote}/global_step_1/actor" and found.mergeable and found.saved
    merged = merge_verl_fsdp(found.actor, tmp_path / "merged")
    want = tiny_model(tie=False, dtype=torch.float32).state_dict()
    got = load_file(merged / "model.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def _fsdp2_copy(shards: Path, tmp_path: Path) -> Path:
    actor = tmp_path / "ckpts" / "global_step_1" / "actor"
    shutil.copytree(actor_of(shards, "fsdp2"), actor)
    (actor.parent.parent / "latest_checkpointed_iteration.txt").write_text("1")
    return actor


def _write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# (case, change to a copy of the fsdp2 actor, substrings of the problem; None: mergeable)
LAYOUTS = [
    # the last rank's file not written yet (a save under way): nothing can merge it
    ("rank missing", lambda a: (a / "model_world_size_2_rank_1.pt").unlink(), ["1 of 2 rank files", "r = 1"]),
    # a resumed run on 4 GPUs left a stale set beside, and no fsdp_config.json says which is current
    ("mixed world sizes", lambda a: ((a / "fsdp_config.json").unlink(), _write(a / "model_world_size_4_rank_0.pt")),
     ["world sizes 2, 4", "verl.model_merger merge --backend fsdp"]),
    # ... with fsdp_config.json naming the world size, verl's merger (and this one) take that set
    ("stale set, config decides", lambda a: _write(a / "model_world_size_4_rank_0.pt"), None),
    ("config disagrees", lambda a: _write(a / "fsdp_config.json", json.dumps({"FSDP_version": 2, "world_size": 4})),
     ["names world size 4", "world size 2"]),
    # the architecture comes from huggingface/config.json only
    ("no config", lambda a: (a / "huggingface" / "config.json").unlink(), ["huggingface/config.json is missing"]),
    ("no tokenizer", lambda a: (a / "huggingface" / "tokenizer.json").unlink(), ["no tokenizer"]),
    # save_contents without model: config and tokenizer, no shards
    ("no shards", lambda a: [p.unlink() for p in a.glob("model_world_size_*")],
     ["no model_world_size_<W>_rank_<r>.pt", "found: fsdp_config.json, huggingface/"]),
    # Megatron's tensor-parallel shards: verl's megatron backend converts them
    ("megatron", lambda a: ([p.unlink() for p in a.glob("model_world_size_*")], (a / "fsdp_config.json").unlink(),
                            _write(a / "dist_ckpt" / "common.pt")), ["Megatron", "dist_ckpt/", "--backend megatron"]),
    # the tracker still names an earlier step: shards whole, but the step not declared saved (reported, mergeable)
    ("tracker behind", lambda a: _write(a.parent.parent / "latest_checkpointed_iteration.txt", "0"), None),
]


@pytest.mark.parametrize("case,change,problem", LAYOUTS, ids=[c[0] for c in LAYOUTS])
def test_layouts_that_cannot_merge_say_why(shards, tmp_path, case, change, problem):
    actor = _fsdp2_copy(shards, tmp_path)
    change(actor)
    found = verl_actor_folder(str(actor))
    assert found.saved is (case != "tracker behind")
    if problem is None:
        assert found.mergeable, found.problem
        merge_verl_fsdp(str(actor), tmp_path / "merged")
        return
    assert not found.mergeable and all(p in found.problem for p in problem), found.problem
    with pytest.raises(ValueError, match="rank|config|tokenizer|model_world_size|Megatron") as exc:
        merge_verl_fsdp(str(actor), tmp_path / "merged")
    assert str(exc.value) == found.problem and not (tmp_path / "merged").exists()


def test_huggingface_folder_with_weights_needs_no_merge(shards, tmp_path):
    """save_contents with hf_model: huggingface/ is a plain model folder; merging it would only copy it."""
    actor = _fsdp2_copy(shards, tmp_path)
    _write(actor / "huggingface" / "model.safetensors")
    found = verl_actor_folder(str(actor.parent))
    assert found.hf_weights == f"{actor}/huggingface" and found.problem is None and not found.mergeable
    with pytest.raises(ValueError, match="already holds the model's weights"):
        merge_verl_fsdp(str(actor), tmp_path / "merged")


def _add_lora(actor: Path) -> None:
    for rank in (0, 1):
        path = actor / f"model_world_size_2_rank_{rank}.pt"
        state = torch.load(path, weights_only=False)
        state["model.layers.0.self_attn.q_proj.lora_A.default.weight"] = state["model.norm.weight"]
        torch.save(state, path)


def _widen_vocab(actor: Path) -> None:
    config = json.loads((actor / "huggingface" / "config.json").read_text())
    (actor / "huggingface" / "config.json").write_text(json.dumps({**config, "vocab_size": 128}))


# problems only reading the shards finds: (case, change, message pattern)
MERGE_TIME = [
    # LoRA adapters inside the shards: verl's converter writes them as lora_adapter/
    ("lora", _add_lora, r"LoRA adapter weights .*lora_A.*verl\.model_merger merge --backend fsdp"),
    # huggingface/config.json of another model than the shards': a size mismatch, not a silent truncation
    ("config of another model", _widen_vocab, r"do not fit the Qwen2ForCausalLM .*size mismatch for model\.embed_tokens"),
]


@pytest.mark.parametrize("case,change,message", MERGE_TIME, ids=[c[0] for c in MERGE_TIME])
def test_merge_time_problems_name_verls_converter(shards, tmp_path, case, change, message):
    actor = _fsdp2_copy(shards, tmp_path)
    change(actor)
    assert verl_actor_folder(str(actor)).mergeable
    with pytest.raises(ValueError, match=message):
        merge_verl_fsdp(str(actor), tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and not (tmp_path / "merged.partial").exists()


def test_other_folders_are_not_verl(tmp_path):
    _write(tmp_path / "checkpoint-10" / "config.json", "{}")
    assert verl_actor_folder(str(tmp_path / "checkpoint-10")) is None
    assert verl_actor_folder(str(tmp_path / "absent")) is None


def test_discovery_finds_verl_steps_and_loads_them_merged(shards, tmp_path, monkeypatch):
    """verl's default layout used to be skipped without a word: discovery now lists `global_step_<n>/` as a
    `verl_fsdp` checkpoint with its step, and the one model loader gets its merged folder."""
    from compute.checkpoints import discover_checkpoints, not_ready
    from compute.models import model_folder

    monkeypatch.setenv("SHIFTLAKE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "run"
    shutil.copytree(shards / "fsdp2", root)
    shutil.copytree(shards / "fsdp2_w1" / "global_step_3", root / "global_step_3")
    found = discover_checkpoints(str(root))
    assert [(c.key, c.step, c.layout) for c in found] == [("rl-step-000001", 1, "verl_fsdp"),
                                                           ("rl-step-000003", 3, "verl_fsdp")]
    assert found[0].uri == str(root / "global_step_1" / "actor") and not_ready(found[0]) is None
    merged = model_folder(found[0], "unused-base")
    assert merged.parent == tmp_path / "cache" / "models" and incomplete_reason(str(merged)) is None
    # a rank file missing (the save cut short): listed, never analysed, and the reason says what is missing
    (root / "global_step_3" / "actor" / "model_world_size_1_rank_0.pt").unlink()
    gone = discover_checkpoints(str(root))[1]
    assert gone.layout == "verl_fsdp" and "no model_world_size_<W>_rank_<r>.pt files" in not_ready(gone)
