"""Finding RL checkpoints in a folder (local, or an S3 prefix) and naming them; telling complete ones.

Recognises TRL / HF Trainer `checkpoint-<step>/`, verl `global_step_<n>/actor[/huggingface]/` and any
folder holding `config.json` plus weights. Keys are readable and safe as partition keys and path parts.
Local folders and `s3://` prefixes go through the same fsspec code; only the URL differs.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import unicodedata
from dataclasses import dataclass

from compute.lake import filesystem

_STEP = re.compile(r"(?:checkpoint-|global_step_)(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Checkpoint:
    key: str
    uri: str
    step: int | None


def _fs(url: str):
    fs = filesystem(url)
    fs.invalidate_cache()  # a sensor tick must see what is there now, not a cached listing
    return fs, url.rstrip("/")


def _url(fs, path: str, like: str) -> str:
    """`path` as returned by `fs`, written like `like` (with its protocol when it had one)."""
    return fs.unstrip_protocol(path) if "://" in like else path


def _files(fs, folder: str) -> dict[str, dict]:
    """The files directly in `folder`: name -> fsspec info."""
    return {i["name"].rstrip("/").rsplit("/", 1)[-1]: i for i in fs.ls(folder, detail=True) if i["type"] == "file"}


def has_weights(folder: str) -> bool:
    fs, folder = _fs(folder)
    names = set(_files(fs, folder)) if fs.isdir(folder) else set()
    return "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names)


def checkpoint_key(name: str, step: int | None) -> str:
    """`rl-step-000200` for a named step, else the folder name made safe (no '/', '..', spaces)."""
    if step is not None:
        return f"rl-step-{step:06d}"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    safe = _UNSAFE.sub("-", ascii_name).strip("-.")
    return f"rl-{safe or 'unnamed'}"


def _model_folder(folder: str) -> str | None:
    for candidate in (folder, f"{folder}/actor/huggingface", f"{folder}/actor"):
        if has_weights(candidate):
            return candidate
    return None


def discover_checkpoints(root: str) -> list[Checkpoint]:
    """Every model folder directly under `root`, ordered by step (unnamed steps last, by name)."""
    fs, root = _fs(str(root))
    if not fs.isdir(root):
        raise FileNotFoundError(f"checkpoint folder {root} does not exist; set CHECKPOINTS_URL to the folder "
                                "your trainer writes checkpoints into")
    found = []
    for info in sorted(fs.ls(root, detail=True), key=lambda i: i["name"]):
        if info["type"] != "directory":
            continue
        folder = _url(fs, info["name"].rstrip("/"), root)
        model = _model_folder(folder)
        if model is None:
            continue
        name = folder.rsplit("/", 1)[-1]
        m = _STEP.search(name)
        step = int(m.group(1)) if m else None
        found.append(Checkpoint(checkpoint_key(name, step), model, step))
    return sorted(found, key=lambda c: (c.step is None, c.step or 0, c.key))


MARKERS = ("COMPLETE", ".complete", "_SUCCESS")  # written by a trainer when a checkpoint is whole
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def listing(path: str) -> dict[str, tuple[int, str]]:
    """Every file under a model folder: relative name -> (size, version: mtime, or the object's ETag on S3).
    Cheap: no byte is read."""
    fs, root = _fs(str(path))
    prefix = len(fs._strip_protocol(root).rstrip("/")) + 1
    return {name[prefix:]: (int(info["size"]), str(info.get("ETag") or info.get("mtime") or info.get("LastModified")))
            for name, info in sorted(fs.find(root, detail=True).items())}


def listing_fingerprint(path: str) -> str:
    return hashlib.sha256(json.dumps(sorted(listing(path).items())).encode()).hexdigest()[:16]


def has_marker(path: str) -> bool:
    fs, root = _fs(str(path))
    return any(fs.exists(f"{root}/{m}") for m in MARKERS)


def incomplete_reason(path: str) -> str | None:
    """Why a model folder cannot be analysed yet (None: complete): config, every weight shard named in a
    safetensors index (each whole: header and every tensor it lists), tokenizer files."""
    fs, root = _fs(str(path))
    files = _files(fs, root)
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
