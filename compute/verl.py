"""verl's default checkpoint layout: recognised, and its FSDP shards merged into a Hugging Face folder.

What verl writes (verl/utils/checkpoint/fsdp_checkpoint_manager.py, `FSDPCheckpointManager.save_checkpoint`;
the trainer's `_save_checkpoint` in verl/trainer/ppo/ray_trainer.py):

    <default_local_dir>/global_step_<n>/actor/
        model_world_size_<W>_rank_<r>.pt   every rank: torch.save(model.state_dict()), FSDP1 under
                                           SHARDED_STATE_DICT with the device mesh (-> DTensor), FSDP2 as is
                                           (-> DTensor); optim_* and extra_state_* beside them (never read here)
        fsdp_config.json                   {"FSDP_version": 1 | 2, "world_size": W}
        huggingface/                       config.json, tokenizer, generation_config.json; weights only when
                                           checkpoint.save_contents includes hf_model
    <default_local_dir>/latest_checkpointed_iteration.txt   the last step saved whole (not with async_save)

Megatron checkpoints (`dist_ckpt/`, `mp_rank_*`) hold tensor/pipeline-parallel shards and are not merged
here; nor are LoRA adapters. For them, and for any folder that cannot be merged, the reason names what
was found and the verl command that converts it into `<actor>/huggingface`, where it is then found as a
plain Hugging Face folder.

`verl_actor_folder` looks (three listings and two small files); `merge_verl_fsdp` reads the model shards,
puts each tensor back together from its DTensor placements (Shard(dim) concatenated in mesh order,
Replicate taken once: verl's ("fsdp",) and ("ddp", "fsdp") meshes) or ShardedTensor offsets (FSDP1 without
a device mesh), loads the result strictly into the model that huggingface/config.json describes and saves it
with save_pretrained, dtype as stored; `merged_copy` does that once per checkpoint into the model cache.
The rank files are pickles (read with weights_only=False, as verl's own merger reads them): merge only
checkpoints you trust. Local folders or fsspec URLs. Knows nothing about Dagster or the lake.

Kept whole although over 250 lines: one trainer's layout, read top to bottom against verl's own code
(recognising the folder, reading its shards, merging them), each part used only by the next.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import pickle
import posixpath
import re
import shutil
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fsspec.implementations.local import LocalFileSystem

from compute.listing import TOKENIZER_FILES
from compute.storage import filesystem

if TYPE_CHECKING:
    import torch

RANK_FILE = re.compile(r"model_world_size_(\d+)_rank_(\d+)\.pt$")
STEP_FOLDER = re.compile(r"global_step_(\d+)$")
TRACKER = "latest_checkpointed_iteration.txt"
HF = "huggingface"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
FSDP_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def merge_command(actor: str, backend: str = "fsdp") -> str:
    """verl's own converter, writing into the actor's huggingface/ folder."""
    return f"python -m verl.model_merger merge --backend {backend} --local_dir {actor} --target_dir {actor}/{HF}"


@dataclass(frozen=True)
class VerlActor:
    actor: str                     # the actor/ folder
    step: int | None               # n of global_step_<n>; None for a folder named otherwise
    world_size: int | None         # W of the rank files (fsdp_config.json's when it names one)
    fsdp_version: int | None       # from fsdp_config.json
    ranks: tuple[int, ...]         # ranks of world size W whose model file is present
    saved: bool | None             # latest_checkpointed_iteration.txt says step n was saved whole; None: no tracker
    hf_weights: str | None         # huggingface/ already holds weights: a plain HF folder, nothing to merge
    problem: str | None            # why the shards cannot be merged: what was found, and what converts it

    @property
    def mergeable(self) -> bool:
        return self.hf_weights is None and self.problem is None


def _listing(fs, folder: str) -> tuple[set[str], set[str]]:
    """(file names, folder names) directly in `folder`; empty when it does not exist."""
    try:
        infos = fs.ls(folder, detail=True)
    except FileNotFoundError:
        return set(), set()
    names = {i["type"]: set() for i in infos}
    for i in infos:
        names[i["type"]].add(i["name"].rstrip("/").rsplit("/", 1)[-1])
    return names.get("file", set()), names.get("directory", set())


def _json(fs, path: str) -> dict | None:
    try:
        value = json.loads(fs.cat_file(path))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def verl_actor_folder(folder: str) -> VerlActor | None:
    """What verl left in `global_step_<n>/` (or in `actor/` itself); None when it is not verl's layout."""
    fs = filesystem(str(folder))
    fs.invalidate_cache()
    folder = str(folder).rstrip("/")
    files, dirs = _listing(fs, folder)
    actor = folder
    if posixpath.basename(folder) != "actor" and not any(RANK_FILE.match(f) for f in files):
        actor = f"{folder}/actor"
        files, dirs = _listing(fs, actor)
    megatron = sorted(d for d in dirs if d == "dist_ckpt" or d.startswith("mp_rank_"))
    rank_files = [tuple(map(int, m.groups())) for f in sorted(files) if (m := RANK_FILE.match(f))]  # (W, r)
    if not (rank_files or megatron or "fsdp_config.json" in files or HF in dirs):
        return None

    step_folder = posixpath.dirname(actor)
    m = STEP_FOLDER.match(posixpath.basename(step_folder))
    step = int(m.group(1)) if m else None
    saved = None
    if step is not None:
        with contextlib.suppress(OSError, ValueError):
            saved = int(fs.cat_file(posixpath.join(posixpath.dirname(step_folder), TRACKER)).strip()) >= step

    hf_files, _ = _listing(fs, f"{actor}/{HF}")
    has_weights = "config.json" in hf_files and any(f.endswith(WEIGHT_SUFFIXES) for f in hf_files)
    hf_weights = f"{actor}/{HF}" if has_weights else None
    fsdp_config = _json(fs, f"{actor}/fsdp_config.json") or {}
    by_world = Counter(w for w, _ in rank_files)
    world = fsdp_config.get("world_size") or (next(iter(by_world)) if len(by_world) == 1 else None)
    ranks = tuple(sorted(r for w, r in rank_files if w == world))

    def info(problem: str | None) -> VerlActor:
        return VerlActor(actor, step, world, fsdp_config.get("FSDP_version"), ranks, saved, hf_weights, problem)

    if hf_weights:
        return info(None)
    if megatron:
        return info(f"{actor} holds a Megatron checkpoint ({', '.join(d + '/' for d in megatron)}): tensor/pipeline-"
                    f"parallel shards, not merged here. Convert it with `{merge_command(actor, 'megatron')}` "
                    "(add --tie-word-embedding for models that tie them)")
    if not rank_files:
        found = ", ".join(sorted(files | {d + "/" for d in dirs})) or "nothing"
        return info(f"{actor} has no model_world_size_<W>_rank_<r>.pt files (found: {found}); the save is under "
                    "way, or checkpoint.save_contents did not include model")
    if world is None:
        return info(f"{actor} holds rank files of world sizes {', '.join(map(str, sorted(by_world)))} and no "
                    f"fsdp_config.json naming one: delete the stale ones, or convert with `{merge_command(actor)}` "
                    "after writing fsdp_config.json")
    if world not in by_world:
        return info(f"{actor}/fsdp_config.json names world size {world} but the rank files are of world size "
                    f"{', '.join(map(str, sorted(by_world)))}")
    missing = sorted(set(range(world)) - set(ranks))
    if missing:
        return info(f"{actor} has {len(ranks)} of {world} rank files: model_world_size_{world}_rank_<r>.pt missing "
                    f"for r = {', '.join(map(str, missing))} (the save is under way or was cut short); nothing can "
                    "merge an incomplete set")
    if "config.json" not in hf_files:
        return info(f"{actor}/{HF}/config.json is missing, so the architecture is unknown: copy the base model's "
                    f"config.json and tokenizer files into {actor}/{HF}/ (then this merges, as does "
                    f"`{merge_command(actor)}`)")
    if not any(t in hf_files for t in TOKENIZER_FILES) or "tokenizer_config.json" not in hf_files:
        return info(f"{actor}/{HF}/ has config.json but no tokenizer (tokenizer_config.json with "
                    f"{' or '.join(TOKENIZER_FILES)}): copy the base model's tokenizer files into it")
    return info(None)


# ---- merging (torch is imported here, where shards are read: recognising a folder needs none) ---------------

@functools.cache
def _sharded_tensor_state() -> type:
    import torch
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    class _ShardedTensorState(torch.Tensor):
        """Stands in for a pickled ShardedTensor (FSDP1 without a device mesh), which refuses to unpickle outside
        a process group of the saving rank and size; keeps its local shards and global metadata."""

        ProcessGroupState = ShardedTensor.ProcessGroupState

        @classmethod
        def __torch_dispatch__(cls, func, types_, args=(), kwargs=None):
            raise TypeError("a ShardedTensor read for merging only")

        def __setstate__(self, state):
            self.local_shards, self.metadata = state[0], state[1]

    return _ShardedTensorState


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if name == "ShardedTensor" and module.startswith("torch.distributed._shard.sharded_tensor"):
            return _sharded_tensor_state()
        return super().find_class(module, name)


_PICKLE = types.SimpleNamespace(__name__="pickle", Unpickler=_Unpickler, load=pickle.load)


def _load_rank(fs, path: str) -> dict:
    import torch

    # a DeviceMesh unpickled without process groups warns that torch.compile would fail on it: not used here
    mesh_log = logging.getLogger("torch.distributed.device_mesh")
    level = mesh_log.level
    mesh_log.setLevel(logging.ERROR)
    try:
        if isinstance(fs, LocalFileSystem):
            return torch.load(path, map_location="cpu", weights_only=False, mmap=True, pickle_module=_PICKLE)
        with fs.open(path, "rb") as fh:
            return torch.load(fh, map_location="cpu", weights_only=False, pickle_module=_PICKLE)
    finally:
        mesh_log.setLevel(level)


def _assemble(local: dict[int, torch.Tensor], mesh: torch.Tensor, placements: tuple) -> torch.Tensor:
    """The global tensor from each rank's local one: mesh dim 0 splits first (DTensor's order), so shards
    are concatenated innermost mesh dim first; a replicated mesh dim contributes its first coordinate."""
    import torch
    from torch.distributed.tensor import Replicate, Shard

    if mesh.ndim == 0:
        return local[int(mesh)]
    placement, rest = placements[0], placements[1:]
    if type(placement) is Replicate:
        return _assemble(local, mesh[0], rest)
    if type(placement) is Shard:
        return torch.cat([_assemble(local, sub, rest) for sub in mesh], dim=placement.dim)
    raise ValueError(f"placement {placement} (partial or strided: tensor parallelism)")


def _merge_one(key: str, values: list) -> torch.Tensor:
    """One entry of the state dict from every rank's value (values[r] is rank r's)."""
    import torch
    from torch.distributed.tensor import DTensor

    first = values[0]
    if isinstance(first, DTensor):  # FSDP2, and FSDP1 with a device mesh (verl): the mesh says where each rank sits
        ranks = sorted(int(r) for r in first.device_mesh.mesh.flatten())
        if ranks != list(range(len(values))):
            raise ValueError(f"{key}: its device mesh holds ranks {ranks}, the files ranks 0..{len(values) - 1}")
        full = _assemble({r: v.to_local() for r, v in enumerate(values)}, first.device_mesh.mesh,
                         tuple(first.placements))
        if full.shape != first.shape:
            raise ValueError(f"{key}: its shards make {tuple(full.shape)}, the DTensor says {tuple(first.shape)}")
        return full.contiguous()
    if isinstance(first, _sharded_tensor_state()):  # FSDP1 without a device mesh: each shard knows its offsets
        full = torch.empty(first.metadata.size, dtype=first.local_shards[0].tensor.dtype)
        covered = 0
        for shard in (s for v in values for s in v.local_shards):
            full[tuple(slice(o, o + n) for o, n in zip(shard.metadata.shard_offsets, shard.metadata.shard_sizes))] = \
                shard.tensor
            covered += shard.tensor.numel()
        if covered != full.numel():
            raise ValueError(f"{key}: the ranks' shards cover {covered} of its {full.numel()} elements")
        return full
    if isinstance(first, torch.Tensor):  # not sharded: the same on every rank (a buffer)
        return first.clone()
    raise ValueError(f"{key}: a {type(first).__name__}, not a tensor")


def _clean_key(key: str) -> str:
    for prefix in FSDP_PREFIXES:
        key = key.replace(prefix, "")
    return key


def merged_state_dict(actor: VerlActor) -> dict[str, torch.Tensor]:
    """Every rank's model file of a mergeable actor, put back together: name -> full tensor, dtype as stored."""
    fs = filesystem(actor.actor)
    ranks = [_load_rank(fs, f"{actor.actor}/model_world_size_{actor.world_size}_rank_{r}.pt")
             for r in range(actor.world_size)]
    keys = list(ranks[0])
    for r, state in enumerate(ranks[1:], start=1):
        if set(state) != set(keys):
            raise ValueError(f"{actor.actor}: rank {r} holds other keys than rank 0 "
                             f"({sorted(set(state) ^ set(keys))[:3]}): not one model's shards")
    if lora := next((k for k in keys if "lora_" in k), None):
        raise ValueError(f"{actor.actor} holds LoRA adapter weights ({lora}), not merged here: convert with "
                         f"`{merge_command(actor.actor)}`, which also writes lora_adapter/")
    state = {}
    for key in keys:
        try:
            state[_clean_key(key)] = _merge_one(key, [rank.pop(key) for rank in ranks])
        except ValueError as exc:
            raise ValueError(f"{actor.actor}: cannot merge {exc}; convert with `{merge_command(actor.actor)}`") from exc
    return state


def merge_verl_fsdp(actor_dir: str, out_dir: str | Path) -> Path:
    """Merge verl's FSDP shards in `actor_dir` (an actor/ or global_step_<n>/ folder) into a save_pretrained
    folder at `out_dir`: safetensors weights as stored, loaded strictly into the model huggingface/config.json
    describes, with verl's tokenizer and generation config. Written into `<out_dir>.partial` and renamed:
    `out_dir` appears whole or not at all."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    found = verl_actor_folder(str(actor_dir))
    if found is None:
        raise ValueError(f"{actor_dir} is not a verl checkpoint (no actor/ with model_world_size_<W>_rank_<r>.pt)")
    if found.hf_weights:
        raise ValueError(f"{found.hf_weights} already holds the model's weights: load that folder, nothing to merge")
    if found.problem:
        raise ValueError(found.problem)
    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        # config, tokenizer, generation config, custom code: everything but weights
        filesystem(found.actor).get(f"{found.actor}/{HF}/", str(staging), recursive=True)
        for p in staging.iterdir():
            if p.name.endswith((*WEIGHT_SUFFIXES, ".index.json")):
                p.unlink()
        state = merged_state_dict(found)
        config = AutoConfig.from_pretrained(staging)
        dtype = Counter(t.dtype for t in state.values() if t.is_floating_point()).most_common(1)[0][0]
        with torch.device("meta"):  # no memory, no random init: every weight comes from the shards
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        misfit = f"{found.actor}: the shards do not fit the {type(model).__name__} of {HF}/config.json"
        try:
            missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        except RuntimeError as exc:  # a size mismatch
            detail = " ".join(str(exc).split())
            raise ValueError(f"{misfit} ({detail}); verl's own converter: `{merge_command(found.actor)}`") from exc
        model.tie_weights()
        after = model.state_dict()
        missing = [k for k in missing if after[k].is_meta]  # a tied lm_head is the embedding, not missing
        if missing or unexpected:
            raise ValueError(f"{misfit} (missing {missing[:5]}, unexpected {unexpected[:5]}); verl's own converter: "
                             f"`{merge_command(found.actor)}`")
        if (staging / "generation_config.json").exists():  # verl's, not one derived from the config
            model.generation_config = GenerationConfig.from_pretrained(staging)
        model.save_pretrained(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return out_dir


def merged_copy(actor_dir: str) -> Path:
    """The merged Hugging Face folder of a verl actor, in the model cache: merged once per content (the key is
    the actor folder's listing: names, sizes, versions), found there afterwards."""
    from compute.listing import listing_fingerprint
    from compute.paths import models_cache

    found = verl_actor_folder(str(actor_dir))
    if found is None:
        raise ValueError(f"{actor_dir} is not a verl checkpoint")
    target = models_cache() / f"verl-{listing_fingerprint(found.actor)}"
    if not target.exists():
        merge_verl_fsdp(found.actor, target)
    return target
