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
