"""Checkpoint folders written the way real trainers write them, by running (or calling) the trainer's own saving
code on CPU on a tiny base model, in seconds. Tests of discovery and merging use these instead of hand-made
folders, so a trainer's quirks (file names, rotation, missing config.json, sharding) are the real ones.

- `trl_checkpoints`: TRL's GRPOTrainer, a few optimizer steps with a trivial reward, saving every step as HF
  Trainer does (`checkpoint-<n>/`: weights or a LoRA adapter, tokenizer, trainer_state.json, optimizer.pt, ...),
  with Trainer's rotation under `save_total_limit`.
- `sharded_hf_checkpoint`: save_pretrained with a small `max_shard_size`, as HF Trainer writes big models
  (model.safetensors.index.json + model-0000i-of-0000n.safetensors).
- `openrlhf_hf_checkpoint`: OpenRLHF's `--save_hf_ckpt` folder, `{ckpt_path}/global_step{n}_hf/`
  (openrlhf/trainer/ray/ppo_actor.py `save_checkpoint`: `os.path.join(args.ckpt_path, f"{tag}_hf")` with
  `tag = f"global_step{global_step}"`; the folder holds DeepspeedStrategy.save_model's save_pretrained output,
  config.json and the tokenizer).

Needs the dev extras trl and peft (TRL 1.16 with transformers 5.24 and torch 2.13 on CPU).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def _prompts(base_dir: Path, n: int) -> list[str]:
    """Prompts of the problems.jsonl beside the base (the toy world's layout), else a few fixed ones."""
    problems = base_dir.parent / "problems.jsonl"
    if problems.exists():
        with open(problems) as f:
            return [json.loads(line)["prompt"] for line in f if line.strip()][:n]
    return ["^12+34=", "^56+78=", "^90+12=", "^34+56="][:n]


def _variety_reward(completions, **_) -> list[float]:
    """A trivial reward that differs whenever two completions differ (distinct characters), so that GRPO
    groups sampled hot get non-zero advantages and every step changes the weights."""
    return [float(len(set(c))) for c in completions]


def trl_checkpoints(base_dir: str | Path, out_dir: str | Path, peft: bool = False, save_total_limit: int | None = None,
                    steps: int = 3, new_tokens: Sequence[str] = (), learning_rate: float = 1e-2,
                    seed: int = 0) -> Path:
    """Run TRL's GRPOTrainer from the model in `base_dir` for `steps` optimizer steps, saving every step into
    `out_dir/checkpoint-<step>/` (TRL's own saving; older ones deleted when `save_total_limit` is set).

    peft: train a LoRA adapter (`peft_config=LoraConfig(r=4, ...)`), giving adapter-only checkpoints.
    new_tokens: add these tokens to the tokenizer and resize the embeddings before training (LoRA then saves
    embed_tokens/lm_head as modules_to_save), as a run that adds e.g. <think> tokens does.
    learning_rate: large by default, so the checkpoints differ visibly from the base."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    args = GRPOConfig(
        output_dir=str(out_dir), max_steps=steps, save_strategy="steps", save_steps=1,
        save_total_limit=save_total_limit, report_to=[], use_cpu=True, bf16=False, fp16=False,
        per_device_train_batch_size=2, num_generations=2, max_completion_length=8, temperature=2.0, use_vllm=False,
        learning_rate=learning_rate, gradient_checkpointing=False, logging_steps=1, disable_tqdm=True,
        dataloader_num_workers=0, seed=seed)
    dataset = Dataset.from_list([{"prompt": p} for p in _prompts(base_dir, 2 * steps)])
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model: str | torch.nn.Module = str(base_dir)  # TRL loads it, as a run given a model id does
    if new_tokens:
        tokenizer.add_tokens(list(new_tokens))
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    peft_config = None
    if peft:
        from peft import LoraConfig

        peft_config = LoraConfig(r=4, lora_alpha=8, target_modules=list(LORA_TARGETS),
                                 modules_to_save=["embed_tokens", "lm_head"] if new_tokens else None)
    trainer = GRPOTrainer(model=model, reward_funcs=_variety_reward, args=args, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config)
    trainer.train()
    return out_dir


def sharded_hf_checkpoint(model_dir: str | Path, out_dir: str | Path, max_shard_size: str = "20KB") -> Path:
    """The model and tokenizer of `model_dir` saved into `out_dir` in shards of at most `max_shard_size` (each
    tensor larger than that in a shard of its own): model.safetensors.index.json + model-0000i-of-0000n.safetensors,
    as HF Trainer's save_pretrained writes a model bigger than its shard size."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.save_pretrained(out_dir, max_shard_size=max_shard_size)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out_dir)
    return Path(out_dir)


def openrlhf_hf_checkpoint(model_dir: str | Path, ckpt_path: str | Path, step: int,
                           max_shard_size: str | None = None) -> Path:
    """OpenRLHF's `--save_hf_ckpt` output for `step`: `{ckpt_path}/global_step{step}_hf/` holding save_pretrained
    weights (sharded when `max_shard_size` is given), config.json and the tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(ckpt_path) / f"global_step{step}_hf"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.save_pretrained(out, **({"max_shard_size": max_shard_size} if max_shard_size else {}))
    model.config.to_json_file(out / "config.json")  # as DeepspeedStrategy.save_model does, after save_pretrained
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out
