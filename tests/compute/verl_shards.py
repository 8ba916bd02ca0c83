"""Real verl FSDP checkpoints for the tests, written the way verl's FSDPCheckpointManager writes them.

Run one process per rank (the test starts two): `python -m tests.compute.verl_shards <out> <rank> 2`.
Each rank wraps the same seeded tiny Qwen2 model with torch's own FSDP on CPU (gloo) and saves
`model.state_dict()` with `torch.save`, as verl's save_checkpoint does; rank 0 writes `huggingface/`
(config, tokenizer, generation config: no weights), `fsdp_config.json` and the step tracker. Variants:

    <out>/fsdp2/global_step_1/actor      FSDP2 fully_shard, verl's shard_placement_fn: DTensor, Shard(0) and Shard(1)
    <out>/fsdp1/global_step_1/actor      FSDP1 SHARDED_STATE_DICT with a device mesh (verl): DTensor, uneven Shard(0)
    <out>/fsdp1_nomesh/global_step_1/actor   FSDP1 without a device mesh (older trainers): ShardedTensor
    <out>/hsdp/global_step_1/actor       FSDP2 on verl's (ddp=2, fsdp=1) mesh: DTensor, (Replicate, Shard(0))
    <out>/fsdp2_w1/global_step_3/actor   world size 1 (rank 0 alone, afterwards), bf16 as stored

The original weights are `tiny_model(...)` again: the tests rebuild it and compare.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config, Qwen2ForCausalLM

VARIANTS = {"fsdp2": dict(tie=True, dtype=torch.float32, step=1), "fsdp1": dict(tie=False, dtype=torch.float32, step=1),
            "fsdp1_nomesh": dict(tie=False, dtype=torch.float32, step=1),
            "hsdp": dict(tie=False, dtype=torch.float32, step=1),
            "fsdp2_w1": dict(tie=True, dtype=torch.bfloat16, step=3)}


def tiny_model(tie: bool, dtype: torch.dtype) -> Qwen2ForCausalLM:
    """Vocab 101 (odd: verl's placement fn shards the embedding on dim 1, FSDP1 unevenly on dim 0); every
    parameter drawn from a seeded generator, so each rank and the test build the same weights."""
    from compute.toyworld.tokenizer import build_tokenizer

    tok = build_tokenizer()
    config = Qwen2Config(vocab_size=101, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tie, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, architectures=["Qwen2ForCausalLM"])
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # rotary buffers stay float32, as loaded
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def _place(world: int):
    """verl's get_shard_placement_fn: the first dim the world size divides, else dim 0."""
    from torch.distributed.tensor import Shard

    def place(param):
        return next((Shard(i) for i, n in enumerate(param.shape) if n % world == 0), Shard(0))
    return place


def _sharded_state_dict(variant: str, model, world: int) -> dict:
    from torch.distributed.device_mesh import init_device_mesh

    # verl's create_device_mesh: ("fsdp",), or ("ddp", "fsdp") when fsdp_size < world size
    mesh = (init_device_mesh("cpu", (world, 1), mesh_dim_names=("ddp", "fsdp")) if variant == "hsdp"
            else init_device_mesh("cpu", (world,), mesh_dim_names=("fsdp",)))
    layers = type(model.model.layers[0])
    if not variant.startswith("fsdp1"):  # verl's apply_fsdp2: each decoder layer, then the root
        from torch.distributed.fsdp import fully_shard

        place = _place(mesh.shape[-1])
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh, shard_placement_fn=place)
        fully_shard(model, mesh=mesh, shard_placement_fn=place)
        return model.state_dict()
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp import ShardedStateDictConfig, StateDictType
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    # device_id=cpu: FSDP1 otherwise refuses to run without an accelerator (and then cannot sync_module_states
    # as verl does: the ranks' weights are the same seeded ones anyway)
    wrapped = FSDP(model, auto_wrap_policy=ModuleWrapPolicy({layers}), device_id=torch.device("cpu"),
                   device_mesh=None if variant == "fsdp1_nomesh" else mesh)
    with FSDP.state_dict_type(wrapped, StateDictType.SHARDED_STATE_DICT, ShardedStateDictConfig(offload_to_cpu=True)):
        return wrapped.state_dict()


def save_actor(out: Path, variant: str, rank: int, world: int) -> None:
    """One rank's part of verl's FSDPCheckpointManager.save_checkpoint (model only)."""
    from compute.toyworld.tokenizer import build_tokenizer

    spec = VARIANTS[variant]
    root = out / variant
    actor = root / f"global_step_{spec['step']}" / "actor"
    actor.mkdir(parents=True, exist_ok=True)
    model = tiny_model(spec["tie"], spec["dtype"])
    config = model.config
    torch.save(_sharded_state_dict(variant, model, world), actor / f"model_world_size_{world}_rank_{rank}.pt")
    if rank == 0:
        config.save_pretrained(actor / "huggingface")
        build_tokenizer().save_pretrained(actor / "huggingface")
        GenerationConfig(eos_token_id=config.eos_token_id, max_new_tokens=7).save_pretrained(actor / "huggingface")
        (actor / "fsdp_config.json").write_text(
            json.dumps({"FSDP_version": 1 if variant.startswith("fsdp1") else 2, "world_size": world}, indent=4))
    dist.barrier()
    if rank == 0:
        (root / "latest_checkpointed_iteration.txt").write_text(str(spec["step"]))


def main(out: Path, rank: int, world: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank, world_size=world)
    for variant in ("fsdp2", "fsdp1", "fsdp1_nomesh", "hsdp"):
        save_actor(out, variant, rank, world)
    dist.destroy_process_group()
    if rank == 0:
        dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous_w1", rank=0, world_size=1)
        save_actor(out, "fsdp2_w1", 0, 1)
        dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
