"""The divergence-weighted advantage as an A/B in the toy world: GRPO from the world's base, once as the world
trains it (arm `grpo`) and once with every token's advantage weighted by w = 1 + s (sigmoid(alpha D) - 1/2), D the
policy's KL from the base at that token, computed online from a frozen copy of the base as a trainer would
(arm `grpo_weighted`, `compute.advantages`). Same steps, problems, samples and seeds in both arms (the weighted arm
also runs the base's forward pass, as a KL penalty would); several seeds.

Each arm is scored on the world's evaluation problems before training and every `checkpoint_every` steps:
`samples` responses per problem at temperature 1, the same sampling seeds for every arm and step. The result is the
curves file `ab/<key>/curves.parquet` (arm, seed, step, dataset, problem_id, n, correct: one row per problem), the
format the lake's `training_curves` input reads (AB_CURVES_URL). Seed 0 of arm `grpo` is the world's own GRPO run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from compute.toyworld.world import WorldConfig, build_world, building, load_model, named_config, torch_threads
from compute.verifiers import toy_reward

# torch and the trainers are imported where the A/B runs (as in `compute.toyworld.world`): `ab_curves` also serves
# commands that only look the curves file up.

AB_VERSION = "1"  # bump when the harness changes what it produces
ARMS = ("grpo", "grpo_weighted")
AB_SEEDS, AB_SAMPLES = 3, 4  # seeds per arm; responses per evaluation problem
EVAL_SEED = 9_000_000  # the evaluation's sampling seeds: EVAL_SEED + problem index * samples + sample index


def evaluate(model, tokenizer, problems: list[dict], samples: int, max_new_tokens: int) -> list[int]:
    """Correct responses per problem out of `samples`, sampled at temperature 1 with fixed seeds."""
    from compute.sampling import SamplingParams, sample

    prompts = [tokenizer.encode(p["prompt"], add_special_tokens=False) for p in problems for _ in range(samples)]
    seeds = [EVAL_SEED + i for i in range(len(prompts))]
    out = sample(model, prompts, seeds, SamplingParams(1.0, 1.0, max_new_tokens), tokenizer.eos_token_id,
                 tokenizer.pad_token_id)
    right = [toy_reward(tokenizer.decode(s.response_ids), problems[i // samples]["answer"]) for i, s in enumerate(out)]
    return [int(sum(right[i * samples:(i + 1) * samples])) for i in range(len(problems))]


def weighting(base, kind: str, alpha: float, s: float):
    """GRPO's `token_advantages` hook: the divergence-weighted advantage, D from the frozen `base` at the same
    positions (no gradient through the weights)."""
    import torch

    from compute.advantages import divergence, weighted_advantages

    def token_advantages(advantages, ids, attention, logits):
        with torch.no_grad():
            base_logits = base(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
        return weighted_advantages(advantages, divergence(logits, base_logits, kind, ids[:, 1:]), alpha, s)

    return token_advantages


def ab_curves(world: Path, seeds: int = AB_SEEDS, samples: int = AB_SAMPLES, kind: str = "kl", alpha: float = 1.0,
              s: float = 1.0) -> Path:
    """Where `build_ab` writes the curves of this A/B of the world folder `world`."""
    blob = json.dumps([AB_VERSION, world.name, seeds, samples, kind, alpha, s])
    return world / "ab" / hashlib.sha256(blob.encode()).hexdigest()[:12] / "curves.parquet"


def build_ab(config: WorldConfig | None = None, root: Path | None = None, seeds: int = AB_SEEDS,
             samples: int = AB_SAMPLES, kind: str = "kl", alpha: float = 1.0, s: float = 1.0, log=print) -> Path:
    """The A/B's curves file for the world of `config` (trained first unless cached): `seeds` seeds of each arm,
    `samples` responses per evaluation problem."""
    config = config or named_config()
    world = build_world(config, root, log)
    target = ab_curves(world, seeds, samples, kind, alpha, s).parent
    with building(target, log):
        if (target / "ab.json").exists():
            log(f"toy A/B cached at {target}")
            return target / "curves.parquet"
        import polars as pl

        from compute.toyworld.tokenizer import build_tokenizer
        from compute.toyworld.train import grpo

        problems = [json.loads(line) for line in (world / "problems.jsonl").read_text().splitlines()]
        tokenizer = build_tokenizer()
        frames, record = [], {"version": AB_VERSION, "seeds": seeds, "samples": samples, "kind": kind, "alpha": alpha,
                              "s": s, "runs": []}
        with torch_threads(config.threads):
            base = load_model(world / "base").eval()
            start = evaluate(base, tokenizer, problems, samples, config.max_new_tokens)
            for seed in range(seeds):
                for arm in ARMS:
                    model, t0, curve = load_model(world / "base"), time.perf_counter(), {0: start}

                    def score(step: int) -> None:
                        curve[step] = evaluate(model, tokenizer, problems, samples, config.max_new_tokens)

                    rewards = grpo(model, tokenizer, toy_reward, config.rl_steps, config.rl_prompts,
                                   config.rl_group, config.rl_lr, config.seed + 1 + 1000 * seed, config.max_new_tokens,
                                   config.width, score, config.checkpoint_every,
                                   weighting(base, kind, alpha, s) if arm != "grpo" else None)
                    seconds = time.perf_counter() - t0
                    accuracy = {step: sum(c) / (samples * len(problems)) for step, c in curve.items()}
                    log(f"toy A/B {arm} seed {seed}: {seconds:.0f} s, accuracy "
                        + " -> ".join(f"{accuracy[k]:.3f}" for k in sorted(accuracy)))
                    record["runs"].append({"arm": arm, "seed": seed, "seconds": seconds, "rewards": rewards})
                    frames += [pl.DataFrame({"arm": arm, "seed": seed, "step": step,
                                             "dataset": [p["dataset"] for p in problems],
                                             "problem_id": [p["problem_id"] for p in problems], "n": samples,
                                             "correct": correct}) for step, correct in sorted(curve.items())]
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        pl.concat(frames).with_columns(pl.col("seed", "step", "n", "correct").cast(pl.Int32)).write_parquet(
            staging / "curves.parquet")
        (staging / "ab.json").write_text(json.dumps(record, indent=2))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        return target / "curves.parquet"
