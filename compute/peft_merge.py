"""PEFT adapter checkpoints (LoRA, as TRL writes them): recognised, and merged into their base as a plain
Hugging Face folder that every other part of shiftlake loads like any checkpoint.

What TRL / HF Trainer writes when trained with a `peft_config` (Trainer._save -> PeftModel.save_pretrained):

    <output_dir>/checkpoint-<n>/
        adapter_config.json         peft_type, base_model_name_or_path (the path or hub id the trainer loaded),
                                    r, lora_alpha, target_modules, modules_to_save
        adapter_model.safetensors   the adapter's weights only: lora_A / lora_B, copies of modules_to_save, and
                                    the whole embedding matrices when the vocabulary was resized
                                    (OpenRLHF under ZeRO-3 writes adapter_model.bin instead)
        README.md                   PEFT's model card
        tokenizer.json, tokenizer_config.json, ...        the processing class
        trainer_state.json, training_args.bin, optimizer.pt, scheduler.pt, rng_state.pth
    and no config.json, no generation_config.json: the model is base + adapter.

`adapter_info` looks: one listing and adapter_config.json, local folders or fsspec URLs, no weight read and
no peft import (a sensor can afford it); its `problem` says why a folder cannot be merged. `merge_adapter`
loads the base (float32, CPU), applies the adapter with `peft.PeftModel.from_pretrained`, folds it in with
`merge_and_unload()` and saves a save_pretrained folder (safetensors, float32) with the tokenizer (the
adapter folder's when the trainer saved one, else the base's) and the generation config. A vocabulary the
trainer resized (embedding matrices in the adapter, in modules_to_save or saved whole) is resized in the base
first; embeddings that training untied are saved untied. The folder written is then loaded again and must
reproduce the adapted model's logits: a merge that dropped part of the adapter fails loudly instead of
yielding the base. Written into a staging folder and renamed: the result appears whole or not at all.
`merged_adapter_copy` does that once per (base listing, adapter listing) into the model cache.
Knows nothing about Dagster or the lake.

Kept whole although over 250 lines: one layout, read top to bottom against PEFT's and TRL's own code
(recognising the adapter, finding its base, merging it), each part used only by the next.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_PROMPT = "learns virtual tokens or key/value prefixes used at run time and changes no weight"
UNMERGEABLE = {  # peft_type -> why merge_and_unload cannot fold it into the base weights
    "PROMPT_TUNING": _PROMPT,
    "MULTITASK_PROMPT_TUNING": _PROMPT,
    "P_TUNING": _PROMPT,
    "PREFIX_TUNING": _PROMPT,
    "CPT": _PROMPT,
    "CARTRIDGE": _PROMPT,
    "ADAPTION_PROMPT": "adds gated adaption prompts to attention at run time and changes no weight",
    "POLY": "routes between LoRA skills by task id at run time; peft cannot merge it",
    "XLORA": "mixes LoRA experts per token through a learned classifier; peft cannot merge it",
}
PROBE_TOKENS = 16  # ids spread over the vocabulary, new rows included, for the merged-output check


@dataclass(frozen=True)
class AdapterInfo:
    folder: str
    peft_type: str | None
    base_model_name_or_path: str | None  # as recorded by the trainer: a path on its machine, or a hub id
    weights: str | None  # adapter_model.safetensors | adapter_model.bin | None when absent
    problem: str | None  # why it cannot be merged: what was found, and what to do instead

    @property
    def mergeable(self) -> bool:
        return self.problem is None


def adapter_info(folder: str | Path) -> AdapterInfo | None:
    """The PEFT adapter in `folder` (local path or fsspec URL); None when it holds no adapter_config.json."""
    from compute.storage import filesystem

    root = str(folder).rstrip("/")
    fs = filesystem(root)
    fs.invalidate_cache()
    try:
        names = {i["name"].rstrip("/").rsplit("/", 1)[-1] for i in fs.ls(root, detail=True) if i["type"] == "file"}
    except (FileNotFoundError, NotADirectoryError):
        return None
    if ADAPTER_CONFIG not in names:
        return None
    weights = next((w for w in ADAPTER_WEIGHTS if w in names), None)
    try:
        config = json.loads(fs.cat_file(f"{root}/{ADAPTER_CONFIG}"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        return AdapterInfo(root, None, None, weights, f"{root}/{ADAPTER_CONFIG} is unreadable ({type(exc).__name__}: "
                           f"{exc}); if the trainer is still writing it, it is read again on the next look")
    peft_type = config.get("peft_type")
    base = config.get("base_model_name_or_path")
    problem = None
    if not peft_type:
        problem = f"{root}/{ADAPTER_CONFIG} names no peft_type: not an adapter that peft can load"
    elif peft_type in UNMERGEABLE:
        problem = (f"{root} holds a PEFT {peft_type} adapter, which cannot be merged into its base: it "
                   f"{UNMERGEABLE[peft_type]}. Token-level analysis needs a model with plain weights: train with "
                   "a LoRA peft_config (peft.LoraConfig), or save the trained model whole with save_pretrained")
    elif weights is None:
        listed = ", ".join(sorted(names)[:12]) + (", ..." if len(names) > 12 else "")
        problem = (f"{root} has {ADAPTER_CONFIG} but no adapter weights ({' or '.join(ADAPTER_WEIGHTS)}; found: "
                   f"{listed}); if the trainer is still writing the checkpoint it is looked at again later")
    return AdapterInfo(root, peft_type, base, weights, problem)


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Merge the adapter in local folder `adapter_dir` into the base model in local folder `base_dir` and write a
    save_pretrained folder at `out_dir` (replaced if present). Raises ValueError with the reason when the adapter
    cannot be merged, does not fit the base, or the merged folder does not reproduce the adapted model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    base_dir, adapter_dir, out_dir = Path(base_dir), Path(adapter_dir), Path(out_dir)
    info = adapter_info(adapter_dir)
    if info is None:
        raise ValueError(f"{adapter_dir} holds no PEFT adapter (no {ADAPTER_CONFIG})")
    if info.problem:
        raise ValueError(info.problem)
    staging = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        _fit_vocabulary(model, _weight_shapes(adapter_dir / info.weights))
        model = _apply_adapter(model, info, base_dir)
        probe = _probe_ids(model.get_input_embeddings().weight.shape[0])
        with torch.inference_mode():
            expected = model(input_ids=probe).logits.float()
        merged = model.merge_and_unload()
        _untie_if_trained_apart(merged)
        tokenizer_dir = adapter_dir if _has_tokenizer(adapter_dir) else base_dir
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        rows = merged.get_input_embeddings().weight.shape[0]
        if len(tokenizer) > rows:
            raise ValueError(f"the tokenizer of {tokenizer_dir} has {len(tokenizer)} tokens but the merged model "
                             f"embeds only {rows}: the adapter {adapter_dir} was trained with added tokens but holds "
                             "no embedding weights for them (save it with save_embedding_layers=True, or list "
                             "the embedding and lm_head in modules_to_save)")
        if (adapter_dir / "generation_config.json").exists():
            merged.generation_config = GenerationConfig.from_pretrained(adapter_dir)
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        del model, merged
        _check_reproduces(staging, probe, expected, adapter_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out_dir.exists():
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out_dir)
    return out_dir


def merged_adapter_copy(base_dir: str | Path, adapter_dir: str | Path) -> Path:
    """The merged folder of `adapter_dir` on `base_dir` (local folders) in the model cache, keyed by both folders'
    listings (names, sizes, versions), as the other model caches are: merged once, found afterwards, and no
    byte of the base read to find it."""
    from compute.listing import listing_fingerprint
    from compute.paths import models_cache

    key = hashlib.sha256(f"{listing_fingerprint(str(base_dir))}\n{listing_fingerprint(str(adapter_dir))}".encode()).hexdigest()
    target = models_cache() / f"peft-{key[:16]}"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        merge_adapter(base_dir, adapter_dir, target)
    return target


def _apply_adapter(model, info: AdapterInfo, base_dir: Path):
    """peft.PeftModel.from_pretrained, with its two quiet failures made loud: an adapter that does not fit the
    base, and (only a warning in peft) adapter weights missing for modules the config targets, which would
    leave those modules as in the base."""
    from peft import PeftModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = PeftModel.from_pretrained(model, info.folder).eval()
        except (RuntimeError, ValueError, KeyError) as exc:
            detail = " ".join(str(exc).split())[:500]
            raise ValueError(f"the {info.peft_type} adapter {info.folder} does not fit the base model {base_dir} "
                             f"({detail}); it was trained on {info.base_model_name_or_path!r}") from exc
    for w in caught:
        if "missing adapter keys" in str(w.message):
            raise ValueError(f"the adapter weights in {info.folder} lack tensors that its {ADAPTER_CONFIG} calls for "
                             f"({' '.join(str(w.message).split())[:300]}): merged, those modules would keep the "
                             "base's weights. The weights file is incomplete or belongs to another adapter")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model


def _has_tokenizer(folder: Path) -> bool:
    from compute.listing import TOKENIZER_FILES

    return (folder / "tokenizer_config.json").exists() and any((folder / t).exists() for t in TOKENIZER_FILES)


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an adapter weight file (safetensors: the header only)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    import torch

    return {k: tuple(v.shape) for k, v in torch.load(path, map_location="cpu", weights_only=True, mmap=True).items()}


def _fit_vocabulary(model, shapes: dict[str, tuple[int, ...]]) -> None:
    """Resize the base's token embeddings to the vocabulary the adapter was trained with, when its weights
    say (embedding or lm_head saved whole or as modules_to_save, or LoRA on them); the adapter then loads
    its rows over the resized matrices."""
    modules = {m: n for n, m in model.named_modules()}
    embedding = modules.get(model.get_input_embeddings())
    output = modules.get(model.get_output_embeddings())
    rows = set()
    for key, shape in shapes.items():
        name = key.removeprefix("base_model.model.")
        for module in filter(None, (embedding, output)):
            if not name.startswith(f"{module}."):
                continue
            part = name[len(module) + 1:]
            if part in ("weight", "modules_to_save.weight", "original_module.weight"):
                rows.add(shape[0])
            elif part.startswith("lora_embedding_A"):  # [r, num_embeddings]
                rows.add(shape[1])
            elif module == output and part.startswith("lora_B"):  # [vocab, r]
                rows.add(shape[0])
    if len(rows) > 1:
        raise ValueError(f"the adapter's embedding weights disagree on the vocabulary size ({sorted(rows)})")
    if rows and (n := rows.pop()) != model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(n, mean_resizing=False)


def _untie_if_trained_apart(model) -> None:
    """A base with tied input/output embeddings whose adapter trained them apart (both in modules_to_save)
    must be saved untied, or loading would tie lm_head back to the embedding."""
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    config = model.config.get_text_config()
    if out is None or not getattr(config, "tie_word_embeddings", False) or inp.weight is out.weight:
        return
    if inp.weight.shape != out.weight.shape or not bool((inp.weight == out.weight).all()):
        config.tie_word_embeddings = False
        model.config.tie_word_embeddings = False


def _probe_ids(vocab: int):
    import torch

    return torch.linspace(0, vocab - 1, min(PROBE_TOKENS, vocab)).round().long().unsqueeze(0)


def _check_reproduces(folder: Path, probe, expected, adapter_dir: Path) -> None:
    """The saved folder, loaded as any checkpoint is, gives the adapted model's logits (float32 tolerance)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.inference_mode():
        got = model(input_ids=probe).logits.float()
    scale = max(1.0, float(expected.abs().max()))
    err = float((got - expected).abs().max()) if got.shape == expected.shape else float("inf")
    if err > 1e-4 * scale:
        raise ValueError(f"merging the adapter {adapter_dir} did not reproduce its outputs (max logit difference "
                         f"{err:.3g}): merge_and_unload dropped part of it. Merge it with peft yourself and save "
                         "the result with save_pretrained into the checkpoint folder")
