"""`python -m compute.toyworld.bench`: where the toy world's training time goes, and what the length buckets save.

Times, in one run and alternating so that a noisy machine weighs on both alike, one step of the world's SFT (one
fresh batch: forward, backward, clip, AdamW) and of its GRPO (sampling the groups, then the update) with the loss
computed over one right-padded batch against one pass per length bucket (`train.response_loss`). Prints ms per step,
the padded share of each batch's tokens and the ratio. Options: --steps N (steps per timing), --rounds N, --threads N.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from compute.sampling import SamplingParams
from compute.toyworld.task import prompt_for, random_operands, sft_response
from compute.toyworld.tokenizer import build_tokenizer, char_encoder
from compute.toyworld.train import length_buckets, new_model, response_logprobs, response_loss, sampled_groups
from compute.toyworld.world import WorldConfig, torch_threads
from compute.verifiers import toy_reward


def padded_loss(model, prompts, responses, pad_id, advantages=None) -> torch.Tensor:
    """The loss as one right-padded batch computes it (what `response_loss` replaced)."""
    logp, mask = response_logprobs(model, prompts, responses, pad_id)
    weight = mask if advantages is None else mask * advantages.unsqueeze(1)
    return -(logp * weight).sum() / mask.sum()


def padding(prompts, responses, buckets: bool) -> float:
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses)]
    groups = length_buckets(lengths) if buckets else [list(range(len(lengths)))]
    return 1 - sum(lengths) / sum(len(g) * max(lengths[i] for i in g) for g in groups)


def update(model, opt, loss) -> None:
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=WorldConfig().threads)
    args = ap.parse_args(argv)
    config, tokenizer = WorldConfig(), build_tokenizer()
    encode, pad = char_encoder(tokenizer), tokenizer.pad_token_id
    model = new_model(config.hidden, config.layers, config.heads, config.intermediate, config.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rng = random.Random(0)
    pairs = [random_operands(rng, config.width) for _ in range(config.sft_batch)]
    sft_batch = ([encode(prompt_for(a, b, config.width)) for a, b in pairs],
                 [encode(sft_response(a, b, rng, config.noise, config.width)) for a, b in pairs])
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=config.max_new_tokens)
    times = {k: [] for k in ("sft padded", "sft buckets", "grpo sampling", "grpo update padded", "grpo update buckets")}
    with torch_threads(args.threads):
        prompts, samples, rewards = sampled_groups(model, tokenizer, toy_reward, rng, config.rl_prompts,
                                                   config.rl_group, params, config.width)
        grpo_batch = (prompts, [s.response_ids for s in samples])
        advantages = torch.randn(len(prompts), generator=torch.Generator().manual_seed(0))
        model.train()
        for _ in range(args.rounds):
            for name, run in [
                ("sft padded", lambda: update(model, opt, padded_loss(model, *sft_batch, pad))),
                ("sft buckets", lambda: update(model, opt, response_loss(model, *sft_batch, pad))),
                ("grpo sampling", lambda: sampled_groups(model, tokenizer, toy_reward, rng, config.rl_prompts,
                                                         config.rl_group, params, config.width)),
                ("grpo update padded", lambda: update(model, opt, padded_loss(model, *grpo_batch, pad, advantages))),
                ("grpo update buckets", lambda: update(model, opt, response_loss(model, *grpo_batch, pad, advantages))),
            ]:
                t = time.perf_counter()
                for _ in range(args.steps):
                    run()
                times[name].append((time.perf_counter() - t) / args.steps * 1000)
    ms = {k: statistics.median(v) for k, v in times.items()}
    print(f"toy world training, {args.threads} threads, median of {args.rounds} rounds of {args.steps} steps "
          f"(SFT batch {config.sft_batch}, GRPO {config.rl_prompts}x{config.rl_group} rows; an untrained model's "
          f"{sum(map(len, grpo_batch[1])) / len(prompts):.0f}-token responses)")
    print(f"{'step':<22}{'ms':>8}  padded share")
    shares = {"sft padded": padding(*sft_batch, False), "sft buckets": padding(*sft_batch, True),
              "grpo update padded": padding(*grpo_batch, False), "grpo update buckets": padding(*grpo_batch, True)}
    for name, value in ms.items():
        share = f"{shares[name]:.0%}" if name in shares else ""
        print(f"{name:<22}{value:>8.1f}  {share}")
    print(f"SFT step: buckets {ms['sft padded'] / ms['sft buckets']:.2f}x faster; GRPO update: "
          f"{ms['grpo update padded'] / ms['grpo update buckets']:.2f}x")


if __name__ == "__main__":
    main()
