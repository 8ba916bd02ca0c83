"""LoRA checkpoints as TRL writes them (GRPOTrainer with a peft_config, run on CPU on the toy base) merge into
a plain Hugging Face folder that reproduces base + adapter; adapters that cannot be merged say why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fsspec
import pytest
import torch
from safetensors.torch import load_file

from compute.checkpoints import incomplete_reason
from compute.models import load_model
from compute.peft_merge import adapter_info, merge_adapter, merged_adapter_copy
from tests.trainers import trl_checkpoints

NEW_TOKENS = ["<think>", "</think>"]


@pytest.fixture(scope="session")
def lora_run(small_world, tmp_path_factory) -> Path:
    """checkpoint-1/ and checkpoint-2/ of a LoRA GRPO run (r=4 on the attention projections)."""
    return trl_checkpoints(small_world / "base", tmp_path_factory.mktemp("trl") / "lora", peft=True, steps=2)


@pytest.fixture(scope="session")
def resized_run(small_world, tmp_path_factory) -> Path:
    """checkpoint-1/ of a LoRA GRPO run that added two tokens (embed_tokens and lm_head in modules_to_save)."""
    return trl_checkpoints(small_world / "base", tmp_path_factory.mktemp("trl") / "resized", peft=True, steps=1,
                           new_tokens=NEW_TOKENS)


def probe_ids(world: Path, tokenizer) -> torch.Tensor:
    """A few problems of the world as one left-padding-free batch of equal-length prompts."""
    prompts = [json.loads(line)["prompt"] for line in (world / "problems.jsonl").read_text().splitlines()[:4]]
    return tokenizer(prompts, return_tensors="pt", add_special_tokens=False)["input_ids"]


def peft_logits(base: Path, adapter: Path, ids: torch.Tensor, vocab: int | None = None) -> torch.Tensor:
    """Logits of peft.PeftModel(base, adapter), the reference a merge must reproduce."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if vocab is not None:
        model.resize_token_embeddings(vocab, mean_resizing=False)
    model = PeftModel.from_pretrained(model, adapter).eval()
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_adapter_info_reads_what_trl_wrote(lora_run, small_world):
    """TRL writes the adapter without config.json; the base is named only in adapter_config.json."""
    ckpt = lora_run / "checkpoint-2"
    assert not (ckpt / "config.json").exists()
    info = adapter_info(ckpt)
    assert (info.peft_type, info.weights, info.problem) == ("LORA", "adapter_model.safetensors", None)
    assert info.base_model_name_or_path == str(small_world / "base") and info.mergeable
    assert adapter_info(small_world / "base") is None  # a full model is not an adapter
    assert adapter_info(small_world / "no-such-folder") is None


def test_adapter_info_reads_an_fsspec_url(lora_run, tmp_path):
    """An S3 prefix goes through the same code as a local folder (an in-memory filesystem stands in)."""
    remote = f"/peft-{tmp_path.name}"
    fsspec.filesystem("memory").put(f"{lora_run / 'checkpoint-1'}/", remote, recursive=True)
    info = adapter_info(f"memory://{remote}")
    assert info.peft_type == "LORA" and info.mergeable and info.folder == f"memory://{remote}"


def assert_same_logits(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to float32 summation order: x @ (W + s·BA) against x @ W + s·(x @ A) @ B differs by ~1e-6 of the
    logit scale per layer (measured: 7.7e-6 and 1.2e-5 at max |logit| 8.6), so atol is 1e-5 of that scale."""
    torch.testing.assert_close(got, want, atol=1e-5 * max(1.0, float(want.abs().max())), rtol=0)


def test_merged_model_reproduces_base_plus_adapter(lora_run, small_world, tmp_path):
    """Guards the merge itself: the merged folder, loaded by the one model loader like any checkpoint, gives
    PeftModel(base, adapter)'s logits. The adapter must move the logits by far more than the tolerance, or the
    comparison would pass for a merge that dropped it."""
    ckpt = lora_run / "checkpoint-2"
    merged = merge_adapter(small_world / "base", ckpt, tmp_path / "merged")
    assert incomplete_reason(str(merged)) is None  # a complete, normal HF folder
    names = {p.name for p in merged.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert not names & {"adapter_config.json", "adapter_model.safetensors"}
    assert not list(tmp_path.glob("merged.partial*"))

    loaded = load_model(merged, device=torch.device("cpu"))
    ids = probe_ids(small_world, loaded.tokenizer)
    with torch.inference_mode():
        got = loaded.model(input_ids=ids).logits
        base = load_model(small_world / "base", device=torch.device("cpu")).model(input_ids=ids).logits
    want = peft_logits(small_world / "base", ckpt, ids)
    assert_same_logits(got, want)
    assert (got - base).abs().max() > 1e-1


def test_resized_vocabulary_merges(resized_run, small_world, tmp_path):
    """A run that added tokens saves the resized embedding and lm_head in the adapter (modules_to_save) and its
    own tokenizer: the base is resized before the adapter loads, the merged vocabulary covers the checkpoint's
    tokenizer, its rows are the trained ones, and the logits are PeftModel's on the resized base."""
    ckpt = resized_run / "checkpoint-1"
    merged = merge_adapter(small_world / "base", ckpt, tmp_path / "merged")
    loaded = load_model(merged, device=torch.device("cpu"))
    vocab = len(loaded.tokenizer)
    assert vocab == json.loads((small_world / "base" / "config.json").read_text())["vocab_size"] + len(NEW_TOKENS)
    assert loaded.model.config.vocab_size == vocab == loaded.model.get_input_embeddings().weight.shape[0]
    assert loaded.tokenizer.convert_tokens_to_ids(NEW_TOKENS[0]) < vocab

    trained = load_file(ckpt / "adapter_model.safetensors")
    weights = load_file(merged / "model.safetensors")
    assert torch.equal(weights["lm_head.weight"], trained["base_model.model.lm_head.modules_to_save.weight"])
    assert torch.equal(weights["model.embed_tokens.weight"],
                       trained["base_model.model.model.embed_tokens.modules_to_save.weight"])

    ids = torch.cat([probe_ids(small_world, loaded.tokenizer),
                     torch.tensor([loaded.tokenizer.convert_tokens_to_ids(NEW_TOKENS)] * 4)], dim=1)
    with torch.inference_mode():
        got = loaded.model(input_ids=ids).logits
    assert_same_logits(got, peft_logits(small_world / "base", ckpt, ids, vocab=vocab))


def test_merged_adapter_copy_merges_once_into_the_model_cache(lora_run, small_world, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTLAKE_CACHE", str(tmp_path))
    first = merged_adapter_copy(small_world / "base", lora_run / "checkpoint-1")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert first.parent == tmp_path / "models" and first.name.startswith("peft-")
    assert merged_adapter_copy(small_world / "base", lora_run / "checkpoint-1") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert merged_adapter_copy(small_world / "base", lora_run / "checkpoint-2") != first  # another adapter


def _prompt_tuning(ckpt: Path, base: Path) -> None:
    """Replace the LoRA adapter with a real PEFT prompt-tuning adapter (peft's own save_pretrained)."""
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for p in ckpt.glob("adapter_*"):
        p.unlink()
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    model.save_pretrained(ckpt)


UNMERGEABLE = [
    # prompt learning changes no weight: merge_and_unload has nothing to fold in
    ("prompt_tuning", _prompt_tuning, "PEFT PROMPT_TUNING adapter, which cannot be merged"),
    # the trainer died (or is still writing) between adapter_config.json and the weights
    ("no_weights", lambda ckpt, base: (ckpt / "adapter_model.safetensors").unlink(), "no adapter weights"),
    # a half-written adapter_config.json
    ("truncated_config", lambda ckpt, base: (ckpt / "adapter_config.json").write_text('{"peft_type": "LO'),
     "adapter_config.json is unreadable"),
]


@pytest.mark.parametrize("case,change,problem", UNMERGEABLE, ids=[c[0] for c in UNMERGEABLE])
def test_unmergeable_adapters_say_why(lora_run, small_world, tmp_path, case, change, problem):
    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(lora_run / "checkpoint-1", ckpt)
    change(ckpt, small_world / "base")
    info = adapter_info(ckpt)
    assert problem in info.problem and not info.mergeable
    with pytest.raises(ValueError, match=problem):
        merge_adapter(small_world / "base", ckpt, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_added_tokens_without_embedding_weights_fail_clearly(lora_run, small_world, tmp_path):
    """A checkpoint whose tokenizer grew but whose adapter holds no embedding rows for the new tokens cannot be
    analysed: the merged model would embed ids it has no rows for."""
    from transformers import AutoTokenizer

    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(lora_run / "checkpoint-1", ckpt)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    tokenizer.add_tokens(NEW_TOKENS)
    tokenizer.save_pretrained(ckpt)
    with pytest.raises(ValueError, match=r"has 21 tokens but the merged model embeds only 19"):
        merge_adapter(small_world / "base", ckpt, tmp_path / "merged")


def test_adapter_weights_missing_tensors_fail_clearly(lora_run, small_world, tmp_path):
    """peft only warns when the weights lack tensors for modules the config targets (those modules would stay
    as in the base): a merge must refuse instead."""
    from safetensors.torch import save_file

    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(lora_run / "checkpoint-1", ckpt)
    weights = load_file(ckpt / "adapter_model.safetensors")
    save_file({k: v for k, v in weights.items() if "layers.1." not in k}, ckpt / "adapter_model.safetensors")
    with pytest.raises(ValueError, match="lack tensors that its adapter_config.json calls for"):
        merge_adapter(small_world / "base", ckpt, tmp_path / "merged")


def test_an_adapter_for_another_architecture_fails_clearly(lora_run, small_world, tmp_path):
    ckpt = tmp_path / "checkpoint-1"
    shutil.copytree(lora_run / "checkpoint-1", ckpt)
    config = json.loads((ckpt / "adapter_config.json").read_text())
    (ckpt / "adapter_config.json").write_text(json.dumps({**config, "target_modules": ["c_attn"]}))  # GPT-2's
    with pytest.raises(ValueError, match="does not fit the base model"):
        merge_adapter(small_world / "base", ckpt, tmp_path / "merged")


def test_a_merge_that_drops_the_adapter_is_caught(lora_run, small_world, tmp_path, monkeypatch):
    """The merged folder is checked against the adapted model: a peft type whose merge_and_unload silently
    unloads (returns the bare base) must fail, not hand the base over as the RL checkpoint."""
    from peft.tuners.lora import LoraModel

    monkeypatch.setattr(LoraModel, "merge_and_unload", lambda self, *a, **k: self.unload())
    with pytest.raises(ValueError, match="did not reproduce its outputs"):
        merge_adapter(small_world / "base", lora_run / "checkpoint-2", tmp_path / "merged")
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob("merged.partial*"))
