"""The one model loader: a Hugging Face causal LM folder -> (model, tokenizer), plus the hashes that
identify a checkpoint's content and its tokenizer.

Device auto: CUDA with bf16 where present, CPU float32 otherwise. A model on S3 (`s3://...`) is fetched
once into a local cache keyed by its listing (names, sizes, ETags: the objects' content hashes), so a
changed checkpoint is fetched again and an unchanged one never.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compute.paths import models_cache

if TYPE_CHECKING:
    import torch

# torch and transformers are imported where a model is loaded or run, not at the top: the code location (and
# every Dagster process that loads it) imports this module, and most of them never touch a model

CONTENT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja")


def auto_device() -> torch.device:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def auto_dtype(device: torch.device) -> torch.dtype:
    import torch

    return torch.bfloat16 if device.type == "cuda" else torch.float32


@dataclass
class LoadedModel:
    """A model and its tokenizer; `model` is None in a handle (`load_handle`), whose weights another process holds.
    `uri` is where it was loaded from (a remote worker loads its own copy from there)."""
    path: str
    model: torch.nn.Module | None
    tokenizer: object
    uri: str = ""

    @property
    def generation_config(self):
        """The model's generation config (its EOS ids)."""
        return getattr(self.model, "generation_config", None)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


def local_copy(uri: str | Path, weights: bool = True) -> Path:
    """A local folder holding the model at `uri`: the folder itself, or a cached copy of a remote one (without
    its weight files when `weights` is False: the tokenizer and configs)."""
    uri = str(uri)
    if "://" not in uri:
        return Path(uri)
    import shutil

    from compute.listing import listing_fingerprint
    from compute.storage import filesystem

    target = models_cache() / (listing_fingerprint(uri) + ("" if weights else "-config"))
    if not (target / ".fetched").exists():
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        fs, root = filesystem(uri), uri.rstrip("/")
        if weights:
            fs.get(root + "/", str(staging), recursive=True)
        else:
            prefix = fs._strip_protocol(root).rstrip("/") + "/"
            for name in fs.find(root):
                rel = name[len(prefix):]
                if not rel.endswith(WEIGHT_SUFFIXES):
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    fs.get(name, str(staging / rel))
            staging.mkdir(parents=True, exist_ok=True)
        (staging / ".fetched").write_text(uri)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def model_folder(checkpoint, base_model: str | Path) -> Path:
    """A local Hugging Face folder holding a discovered checkpoint's model (`compute.checkpoints.Checkpoint`):
    the folder itself (or its cached copy), verl's FSDP shards merged, or a LoRA adapter merged into the base;
    merges are cached, so each happens once per content."""
    if checkpoint.layout == "hf":
        return local_copy(checkpoint.uri)
    if checkpoint.layout == "verl_fsdp":
        from compute.verl import merged_copy

        return merged_copy(checkpoint.uri)
    if checkpoint.layout == "peft":
        from compute.peft_merge import merged_adapter_copy

        return merged_adapter_copy(local_copy(base_model), local_copy(checkpoint.uri))
    raise ValueError(checkpoint.problem or f"checkpoint {checkpoint.key}: layout {checkpoint.layout!r} cannot be loaded")


def load_model(path: str | Path, device: torch.device | None = None) -> LoadedModel:
    from transformers import AutoModelForCausalLM

    from compute.sizing import check_fits

    uri, path = str(path), local_copy(path)
    _require_config(path)
    device = device or auto_device()
    check_fits(path, device, auto_dtype(device))
    tokenizer = _tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=auto_dtype(device)).to(device).eval()
    return LoadedModel(str(path), model, tokenizer, uri)


def load_handle(path: str | Path) -> LoadedModel:
    """The tokenizer and config of the model at `path`, no weights (nor are they fetched from S3): what a process
    that sends the model's work elsewhere (`compute.raypool`) needs."""
    uri, path = str(path), local_copy(path, weights=False)
    _require_config(path)
    return LoadedModel(str(path), None, _tokenizer(path), uri)


def _require_config(path: Path) -> None:
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no model at {path}: expected a save_pretrained folder with config.json. "
                                "Set BASE_MODEL / CHECKPOINTS_URL to Hugging Face model folders (`shiftlake toyworld` "
                                "builds the toy world's).")


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def content_hash(path: str | Path) -> str:
    """sha256 over the names and bytes of a model folder's config, weight and tokenizer files."""
    h = hashlib.sha256()
    root = local_copy(path)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CONTENT_SUFFIXES):
        h.update(str(f.relative_to(root)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer) -> dict:
    return {"vocab": sorted(tokenizer.get_vocab().items()),
            "special": sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())}


def tokenizer_hash(tokenizer) -> str:
    return hashlib.sha256(json.dumps(tokenizer_fingerprint(tokenizer)).encode()).hexdigest()


def check_finite_logits(loaded: LoadedModel, where: str | None = None) -> None:
    """One forward pass on a few tokens: NaN or inf logits mean diverged training or corrupt weights (the
    message names `where` the model came from, default its path)."""
    import torch

    tok = loaded.tokenizer
    ids = [i for i in (tok.bos_token_id, *tok.encode("1+1=", add_special_tokens=False)[:4]) if i is not None] or [0]
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        logits = loaded.model(input_ids=torch.tensor([ids], device=device)).logits
    if not torch.isfinite(logits).all():
        raise ValueError(f"the model at {where or loaded.path} produces NaN/inf logits: its weights are corrupt or its "
                         "training diverged. Analyse an earlier checkpoint, or re-export this one.")


class TokenizerMismatch(ValueError):
    pass


def check_same_tokenizer(base_path: str, base_tok, other_path: str, other_tok) -> None:
    """Raise one clear error when two models do not share vocabulary and special tokens."""
    a, b = tokenizer_fingerprint(base_tok), tokenizer_fingerprint(other_tok)
    if a == b:
        return
    what = "vocabulary" if a["vocab"] != b["vocab"] else "special tokens"
    raise TokenizerMismatch(
        f"tokenizers differ ({what}): base {base_path} vs checkpoint {other_path}. Token-level comparison "
        "needs one tokenizer; point BASE_MODEL and CHECKPOINTS_URL at models fine-tuned from the same base."
    )
