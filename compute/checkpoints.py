"""Finding RL checkpoints in a folder (local, or an S3 prefix) and naming them; telling complete ones.

Layouts, as trainers write them (each checkpoint is one folder directly under the watched folder):
    hf         any folder holding config.json plus weights (one file or sharded with an index): TRL / HF
               Trainer `checkpoint-<step>/`, OpenRLHF `global_step<n>_hf/`, save_pretrained output, and verl's
               `global_step_<n>/actor/huggingface/` when it holds weights
    verl_fsdp  verl's `global_step_<n>/actor/` FSDP shards (`compute.verl` merges them)
    peft       a LoRA adapter (`adapter_config.json` + `adapter_model.safetensors`, as TRL writes with a
               `peft_config`), merged into the base (`compute.peft_merge`)
Roles: checkpoints are an RL run's (role `rl`, keys `rl-step-<n>`) unless they come from the supervised run's folder
(SFT_CHECKPOINTS_URL) or their folder's name starts with `sft-`/`sft_` (`sft-checkpoint-100`): role `sft`, keys
`sft-step-<n>`, so both runs land in the same tables, told apart by the `checkpoints` table's `role`.
A folder named like a checkpoint (`checkpoint-<n>`, `global_step<n>`, `global_step_<n>`) that is none of these
is still listed, with `problem` saying what was found and what converts it, so that nothing is skipped
without a word. Keys are readable and safe as partition keys and path parts. Local folders and `s3://`
prefixes go through the same fsspec code; only the URL differs.
"""

from __future__ import annotations

import json
import re
import struct
import unicodedata
from dataclasses import dataclass

from compute.listing import TOKENIZER_FILES, fresh as _fs

_STEP = re.compile(r"(?:checkpoint-|global_step_?)(\d+)(?:_hf)?$")
LAYOUTS = ("hf", "verl_fsdp", "peft", "unknown")
ROLES = ("base", "rl", "sft")  # the `checkpoints` table's role: the base model, an RL run's checkpoint, an SFT run's
_SFT_NAME = re.compile(r"^sft[-_]", re.IGNORECASE)  # the naming rule: `sft-checkpoint-100` under CHECKPOINTS_URL
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Checkpoint:
    key: str
    uri: str  # the folder holding the model as the trainer wrote it (HF folder, verl actor/, adapter folder)
    step: int | None
    layout: str = "hf"  # one of LAYOUTS
    problem: str | None = None  # why it cannot be analysed as it stands: what was found, and the fix
    role: str = "rl"  # one of ROLES[1:]: the run that wrote it


def _url(fs, path: str, like: str) -> str:
    """`path` as returned by `fs`, written like `like` (with its protocol when it had one)."""
    return fs.unstrip_protocol(path) if "://" in like else path


def _files(fs, folder: str) -> dict[str, dict]:
    """The files directly in `folder`: name -> fsspec info."""
    return {i["name"].rstrip("/").rsplit("/", 1)[-1]: i for i in fs.ls(folder, detail=True) if i["type"] == "file"}


def has_folder(path: str) -> bool:
    fs, path = _fs(str(path))
    return fs.isdir(path)


def has_weights(folder: str) -> bool:
    fs, folder = _fs(folder)
    names = set(_files(fs, folder)) if fs.isdir(folder) else set()
    return "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names)


def checkpoint_key(name: str, step: int | None, role: str = "rl") -> str:
    """`rl-step-000200` (`sft-step-000200` for the SFT run's) for a named step, else the folder name made safe
    (no '/', '..', spaces) after the role."""
    if step is not None:
        return f"{role}-step-{step:06d}"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = _UNSAFE.sub("-", ascii_name).strip("-.")
    if role != "rl":
        safe = re.sub(rf"^{role}[-_.]*", "", safe, flags=re.IGNORECASE)
    return f"{role}-{safe or 'unnamed'}"


def _layout(folder: str, named_like_a_checkpoint: bool) -> tuple[str, str, str | None] | None:
    """(layout, model folder, problem) of a folder under the watched one; None when it is not a checkpoint."""
    from compute.verl import verl_actor_folder

    if has_weights(folder):
        return "hf", folder, None
    if (verl := verl_actor_folder(folder)) is not None:
        if verl.hf_weights:
            return "hf", verl.hf_weights, None
        problem = verl.problem or (f"verl has not yet marked step {verl.step} saved (latest_checkpointed_iteration.txt)"
                                   if verl.saved is False else None)
        return "verl_fsdp", verl.actor, problem
    fs, folder = _fs(folder)
    if fs.exists(f"{folder}/adapter_config.json"):
        from compute.peft_merge import adapter_info

        return "peft", folder, adapter_info(folder).problem
    if not named_like_a_checkpoint:
        return None
    found = sorted(i["name"].rstrip("/").rsplit("/", 1)[-1] + ("/" if i["type"] == "directory" else "")
                   for i in fs.ls(folder, detail=True))
    listed = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "") or "nothing"
    deepspeed = any(n.endswith("_model_states.pt") or n.startswith("zero_pp_rank_") for n in found)
    fix = ("a DeepSpeed ZeRO checkpoint (OpenRLHF's ckpt/_actor, for one): convert it with DeepSpeed's "
           f"`python {folder}/zero_to_fp32.py {folder} <out>` or save it with --save_hf_ckpt" if deepspeed else
           "expected config.json with weights (save_pretrained), verl's actor/ FSDP shards, or a PEFT adapter "
           "(adapter_config.json + adapter_model.safetensors)")
    return "unknown", folder, f"no model shiftlake can load in {folder} (found: {listed}): {fix}"


def discover_checkpoints(root: str, sft_root: str = "") -> list[Checkpoint]:
    """Every checkpoint folder directly under `root` (role rl, or sft by the naming rule) and under `sft_root`
    (the SFT run's folder, when given: role sft; not there yet, as before the SFT trainer's first save: none),
    ordered by role then step (unnamed steps last, by name); those that cannot be analysed as they stand carry
    their `problem`."""
    found = _discover(root, None) + (_discover(sft_root, "sft") if sft_root else [])
    keys: dict[str, Checkpoint] = {}
    for c in found:
        if c.key in keys:
            raise ValueError(f"two checkpoint folders would both be {c.key}: {keys[c.key].uri} and {c.uri} (the same "
                             "role and step); keep one of them, or move the SFT run's to SFT_CHECKPOINTS_URL or name "
                             "them sft-*")
        keys[c.key] = c
    return sorted(found, key=lambda c: (ROLES.index(c.role), c.step is None, c.step or 0, c.key))


def _discover(root: str, role: str | None) -> list[Checkpoint]:
    """The checkpoints directly under `root`, each of `role` (None: rl, or sft by the naming rule; a missing SFT
    folder holds none)."""
    fs, root = _fs(str(root))
    if not fs.isdir(root):
        if role == "sft":  # (S3: a prefix exists once something is written under it)
            return []
        raise FileNotFoundError(f"checkpoint folder {root} does not exist; set CHECKPOINTS_URL to the folder your "
                                "trainer writes checkpoints into")
    found = []
    for info in sorted(fs.ls(root, detail=True), key=lambda i: i["name"]):
        if info["type"] != "directory":
            continue
        folder = _url(fs, info["name"].rstrip("/"), root)
        name = folder.rsplit("/", 1)[-1]
        m = _STEP.search(name)
        layout = _layout(folder, m is not None)
        if layout is None:
            continue
        step = int(m.group(1)) if m else None
        kind = role or ("sft" if _SFT_NAME.match(name) else "rl")
        found.append(Checkpoint(checkpoint_key(name, step, kind), layout[1], step, layout[0], layout[2], kind))
    return found


MARKERS = ("COMPLETE", ".complete", "_SUCCESS")  # written by a trainer when a checkpoint is whole
def has_marker(path: str) -> bool:
    fs, root = _fs(str(path))
    return any(fs.exists(f"{root}/{m}") for m in MARKERS)


def not_ready(ckpt: Checkpoint) -> str | None:
    """Why a discovered checkpoint cannot be analysed now (None: it can): its layout's problem, or files
    missing or truncated (the trainer may still be writing)."""
    if ckpt.problem:
        return ckpt.problem
    if ckpt.layout == "peft":
        return adapter_incomplete_reason(ckpt.uri)
    return incomplete_reason(ckpt.uri) if ckpt.layout == "hf" else None


def _folder(path: str):
    """(filesystem, folder, its files: name -> info)."""
    fs, root = _fs(str(path))
    return fs, root, _files(fs, root)


def tokenizer_folder(ckpt: Checkpoint) -> str | None:
    """The folder holding a checkpoint's tokenizer as the trainer wrote it (nothing merged), or None."""
    fs, folder = _fs(f"{ckpt.uri}/huggingface" if ckpt.layout == "verl_fsdp" else ckpt.uri)
    names = set(_files(fs, folder)) if fs.isdir(folder) else set()
    return folder if "tokenizer_config.json" in names and names & set(TOKENIZER_FILES) else None


def adapter_incomplete_reason(path: str) -> str | None:
    """Every adapter weight file of a PEFT adapter folder is whole (an unreadable adapter_config.json or no
    weights at all are the discovered checkpoint's `problem`, from `peft_merge.adapter_info`)."""
    fs, root, files = _folder(path)
    for name in sorted(n for n in files if n.startswith("adapter_model.")):
        if name.endswith(".safetensors") and not _safetensors_whole(fs, f"{root}/{name}", int(files[name]["size"])):
            return f"adapter weights {name} truncated or unreadable"
    return None


def incomplete_reason(path: str) -> str | None:
    """Why a model folder cannot be analysed yet (None: complete): config, every weight shard named in a
    safetensors index (each whole: header and every tensor it lists), tokenizer files."""
    fs, root, files = _folder(path)
    try:
        json.loads(fs.cat_file(f"{root}/config.json"))
    except (OSError, ValueError) as exc:
        return f"config.json unreadable ({type(exc).__name__})"
    if "model.safetensors.index.json" in files:
        try:
            shards = sorted(set(json.loads(fs.cat_file(f"{root}/model.safetensors.index.json"))["weight_map"].values()))
        except (OSError, ValueError, KeyError):
            return "model.safetensors.index.json unreadable"
    else:
        shards = sorted(n for n in files if n.endswith(".safetensors")) or sorted(n for n in files if n.endswith(".bin"))
    if not shards:
        return "no weight files"
    for shard in shards:
        if shard not in files:
            return f"weight shard {shard} missing"
        if shard.endswith(".safetensors") and not _safetensors_whole(fs, f"{root}/{shard}", int(files[shard]["size"])):
            return f"weight shard {shard} truncated or unreadable"
    if not any(t in files for t in TOKENIZER_FILES) or "tokenizer_config.json" not in files:
        return "tokenizer files missing"
    return None


def _safetensors_whole(fs, path: str, size: int) -> bool:
    """The file holds its whole header and every tensor the header lists (reads the header only)."""
    with fs.open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or 8 + (n := struct.unpack("<Q", head)[0]) > size:
            return False
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0) == size
