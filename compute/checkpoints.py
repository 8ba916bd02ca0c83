"""Finding RL checkpoints in a folder and naming them.

Recognises TRL / HF Trainer `checkpoint-<step>/`, verl `global_step_<n>/actor[/huggingface]/` and any
folder holding `config.json` plus weights. Keys are readable and safe as partition keys and path parts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_STEP = re.compile(r"(?:checkpoint-|global_step_)(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Checkpoint:
    key: str
    uri: str
    step: int | None


def has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and any(
        p.suffix in (".safetensors", ".bin") for p in folder.iterdir() if p.is_file())


def checkpoint_key(name: str, step: int | None) -> str:
    """`rl-step-000200` for a named step, else the folder name made safe (no '/', '..', spaces)."""
    if step is not None:
        return f"rl-step-{step:06d}"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = _UNSAFE.sub("-", ascii_name).strip("-.")
    return f"rl-{safe or 'unnamed'}"


def _model_folder(folder: Path) -> Path | None:
    for candidate in (folder, folder / "actor" / "huggingface", folder / "actor"):
        if candidate.is_dir() and has_weights(candidate):
            return candidate
    return None


def discover_checkpoints(root: str | Path) -> list[Checkpoint]:
    """Every model folder directly under `root`, ordered by step (unnamed steps last, by name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist; set CHECKPOINTS_URL to the folder "
                                "your trainer writes checkpoints into")
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        model = _model_folder(folder)
        if model is None:
            continue
        m = _STEP.search(folder.name)
        step = int(m.group(1)) if m else None
        found.append(Checkpoint(checkpoint_key(folder.name, step), str(model), step))
    return sorted(found, key=lambda c: (c.step is None, c.step or 0, c.key))


MARKERS = ("COMPLETE", ".complete", "_SUCCESS")  # written by a trainer when a checkpoint is whole
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def listing(path: str | Path) -> dict[str, tuple[int, int]]:
    """Every file under a model folder: relative name -> (size, mtime_ns). Cheap: no byte is read."""
    root = Path(path)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def listing_fingerprint(path: str | Path) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(sorted(listing(path).items())).encode()).hexdigest()[:16]


def has_marker(path: str | Path) -> bool:
    return any((Path(path) / m).exists() for m in MARKERS)


def incomplete_reason(path: str | Path) -> str | None:
    """Why a model folder cannot be analysed yet (None: complete): config, every weight shard named in a
    safetensors index (each with a readable header), tokenizer files."""
    import json

    root = Path(path)
    try:
        json.loads((root / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return f"config.json unreadable ({type(exc).__name__})"
    index = root / "model.safetensors.index.json"
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError):
            return "model.safetensors.index.json unreadable"
    else:
        shards = [p.name for p in root.glob("*.safetensors")] or [p.name for p in root.glob("*.bin")]
    if not shards:
        return "no weight files"
    for shard in shards:
        f = root / shard
        if not f.exists():
            return f"weight shard {shard} missing"
        if f.suffix == ".safetensors" and not _safetensors_whole(f):
            return f"weight shard {shard} truncated or unreadable"
    if not any((root / t).exists() for t in TOKENIZER_FILES) or not (root / "tokenizer_config.json").exists():
        return "tokenizer files missing"
    return None


def _safetensors_whole(f: Path) -> bool:
    """The file holds its whole header and every tensor the header lists (reads the header only)."""
    import json
    import struct

    size = f.stat().st_size
    with open(f, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or 8 + (n := struct.unpack("<Q", head)[0]) > size:
            return False
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return False
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    return 8 + n + max(ends, default=0) == size
