"""Build (or reuse) the toy RLVR world on disk.

Layout of a world folder, keyed by a hash of its config so a second build is a cache hit:
    base/                     SFT'd base model + tokenizer (save_pretrained)
    checkpoints/checkpoint-N/ GRPO checkpoints, as TRL/HF Trainer name them
    problems.jsonl            the evaluation split (problem_id, prompt, answer)
    world.json                config, hash, timings and training curves
    sft_checkpoints/checkpoint-N/  on request (`build_sft`): a supervised run from the base on the last GRPO
                              checkpoint's correct samples, same steps and batch (sft.json: its record)
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from compute.paths import state_dir
from compute.toyworld.task import Noise, eval_problems
from compute.verifiers import toy_reward

# torch, the tokenizer and the training loops are imported where a world is trained or loaded: the configs and
# `world_dir` also serve commands that only look a world's folders up (`shiftlake status`, `shiftlake ui`), which
# torch and transformers would slow by about 7 s on 2 cores.

BUILDER_VERSION = "3"  # bump when training code changes what a config produces


@dataclass(frozen=True)
class WorldConfig:
    width: int = 4  # digits per operand
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    intermediate: int = 256
    noise: Noise = field(default_factory=Noise)
    sft_steps: int = 1500
    sft_batch: int = 128
    sft_lr: float = 5e-3
    rl_steps: int = 100
    rl_prompts: int = 32
    rl_group: int = 8
    rl_lr: float = 5e-4
    checkpoint_every: int = 25
    max_new_tokens: int = 48
    eval_problems: int = 64
    threads: int = 2
    seed: int = 0

    def digest(self) -> str:
        blob = json.dumps({"builder": BUILDER_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SMALL = WorldConfig(width=2, sft_steps=600, sft_batch=64, rl_steps=4, rl_prompts=8, rl_group=8,
                    checkpoint_every=2, max_new_tokens=24, eval_problems=8)
"""A world for tests, built in seconds: 2-digit addition, every part in the real layout. 600 SFT steps: after 300
(loss 0.45) the base answered 5% right, and its 16 evaluation samples and the checkpoints' all scored 0, so the
tests of accuracy gaps and gap_moved had nothing to compare (after 600: base 17%, RL 20%, 8 problems x 16 samples at
temperature 1)."""

EMERGENT = WorldConfig(noise=Noise(direct_guess=0.5, dropped_carry=0.0, dropped_final_carry=0.0))
"""A world whose base's mistakes are not planted: every SFT target is exact, half of them worked column by
column and half a direct answer (`#<sum>$`). Nothing marks either strategy as worse; the base learns the
worked one well and the direct one not at all (a 2-layer model cannot add four digits in one shot), so its
mistakes come from what training could and could not teach, and RL has to find out which strategy pays."""

WORLDS = {"default": WorldConfig(), "emergent": EMERGENT, "small": SMALL}


def named_config(name: str | None = None) -> WorldConfig:
    """The world named by `name` or $SHIFTLAKE_TOY_WORLD (default | emergent | small)."""
    name = name or os.environ.get("SHIFTLAKE_TOY_WORLD") or "default"
    if name not in WORLDS:
        raise ValueError(f"SHIFTLAKE_TOY_WORLD={name!r} is not a toy world; choose one of {sorted(WORLDS)}")
    return WORLDS[name]


def default_root() -> Path:
    return state_dir() / "toyworld"


def world_dir(config: WorldConfig | None = None, root: Path | None = None) -> Path:
    return (root or default_root()) / (config or named_config()).digest()


@contextmanager
def torch_threads(n: int):
    """torch on `n` threads for the block (the worlds are bit-identical from run to run on the same count)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def building(target: Path, log=lambda *_: None):
    """Hold `target`'s build lock (`<target>.lock`, an flock) for the block: a second process that wants the same
    world, SFT run or A/B says that it waits, waits for the first and then finds it cached, instead of training it
    again into the same staging folder. The lock goes with the process, however it ends."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process that is building {target}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load_model(folder: Path):
    """A toy model saved by `save_pretrained`, in float32 as it was trained."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def checkpoint_saver(model, tokenizer, folder: Path, log=lambda *_: None):
    """`on_checkpoint` of the training loops: `folder/checkpoint-<step>/` as a trainer writes it."""

    def save(step: int) -> None:
        model.save_pretrained(folder / f"checkpoint-{step}")
        tokenizer.save_pretrained(folder / f"checkpoint-{step}")
        log(f"wrote {folder / f'checkpoint-{step}'}")

    return save


def build_world(config: WorldConfig | None = None, root: Path | None = None, log=print) -> Path:
    """Return the world folder for `config`, training it first unless a complete copy is cached."""
    config = config or named_config()
    target = world_dir(config, root)
    with building(target, log):
        if (target / "world.json").exists():
            log(f"toy world {config.digest()} cached at {target}")
            return target
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        with torch_threads(config.threads):
            report = _train(config, staging, log)
        (staging / "world.json").write_text(json.dumps(report, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target


def train_rl(config: WorldConfig, model, tokenizer, checkpoints: Path, log=lambda *_: None) -> list[float]:
    """GRPO from `model` (the SFT'd base), writing `checkpoints/checkpoint-<step>/` in place as a trainer
    does (not atomically: readers must wait until a checkpoint is complete). Returns the mean rewards."""
    from compute.toyworld.train import grpo

    return grpo(model, tokenizer, toy_reward, config.rl_steps, config.rl_prompts, config.rl_group, config.rl_lr,
                config.seed + 1, config.max_new_tokens, config.width, checkpoint_saver(model, tokenizer, checkpoints, log),
                config.checkpoint_every)


SFT_VERSION = "2"  # bump when `build_sft` changes what it produces


def build_sft(config: WorldConfig | None = None, root: Path | None = None, log=print) -> Path:
    """The world's SFT run (trained first unless cached): the base fine-tuned on the final GRPO checkpoint's correct
    samples, rejection-sampling style, for GRPO's steps, problems and group size per step, its checkpoints at every
    other GRPO checkpoint's step (half the analysis; the steps still match). The paper's RL-vs-SFT contrast, on the
    same base and data budget. Returns its checkpoint folder."""
    config = config or named_config()
    world = build_world(config, root, log)
    target, record = world / "sft_checkpoints", world / "sft.json"
    with building(target, log):
        if record.exists() and json.loads(record.read_text()).get("version") == SFT_VERSION:
            log(f"toy SFT run cached at {target}")
            return target
        from compute.toyworld.tokenizer import build_tokenizer
        from compute.toyworld.train import rejection_sft

        staging = world / "sft_checkpoints.partial"
        shutil.rmtree(staging, ignore_errors=True)
        with torch_threads(config.threads):
            model = load_model(world / "base")
            teacher = load_model(world / "checkpoints" / f"checkpoint-{config.rl_steps}")
            tokenizer = build_tokenizer()
            t0 = time.perf_counter()
            kept = rejection_sft(model, teacher, tokenizer, toy_reward, config.rl_steps, config.rl_prompts,
                                 config.rl_group, config.rl_lr, config.seed + 3, config.max_new_tokens, config.width,
                                 checkpoint_saver(model, tokenizer, staging), 2 * config.checkpoint_every)
        seconds = time.perf_counter() - t0
        log(f"toy SFT run: {config.rl_steps} steps on the RL policy's correct samples in {seconds:.0f} s "
            f"({sum(kept) / len(kept):.0%} of the samples correct and kept)")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        record.write_text(json.dumps({"version": SFT_VERSION, "seconds": seconds, "kept_share": kept}, indent=2))
        return target


def _train(config: WorldConfig, out: Path, log) -> dict:
    from compute.toyworld.tokenizer import build_tokenizer
    from compute.toyworld.train import new_model, sft

    tokenizer = build_tokenizer()
    model = new_model(config.hidden, config.layers, config.heads, config.intermediate, config.seed)
    t0 = time.perf_counter()
    sft_losses = sft(model, tokenizer, config.sft_steps, config.sft_batch, config.sft_lr, config.noise, config.seed,
                     config.width)
    sft_s = time.perf_counter() - t0
    log(f"SFT: {config.sft_steps} steps in {sft_s:.0f} s, final loss {sft_losses[-1]:.3f}")
    model.save_pretrained(out / "base")
    tokenizer.save_pretrained(out / "base")
    t0 = time.perf_counter()
    rewards = train_rl(config, model, tokenizer, out / "checkpoints")
    rl_s = time.perf_counter() - t0
    log(f"GRPO: {config.rl_steps} steps in {rl_s:.0f} s, reward {rewards[0]:.2f} -> {rewards[-1]:.2f}")
    with open(out / "problems.jsonl", "w") as f:
        for row in eval_problems(config.eval_problems, config.seed + 2, config.width):
            f.write(json.dumps({"dataset": "toy_addition", **row}) + "\n")
    return {"config": dataclasses.asdict(config), "digest": config.digest(), "sft_seconds": sft_s,
            "rl_seconds": rl_s, "sft_losses": sft_losses[::10], "rl_rewards": rewards}
