"""Training for the toy world: SFT of the base on noisy worked answers, then GRPO from a 0/1 reward.

GRPO is a short hand-written loop (group-normalised advantages, token-level loss as in DAPO, no KL) so
that its rollouts come from the same seeded sampler the lake uses (`compute.sampling`), which TRL's
`generate`-based trainer cannot share. Every checkpoint goes out as `checkpoint-<step>/`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.utils import logging as hf_logging

from compute.decoders import right_pad
from compute.sampling import SamplingParams, sample
from compute.toyworld.task import Noise, prompt_for, random_operands, sft_response
from compute.toyworld.tokenizer import EOS, PAD, VOCAB, char_encoder


hf_logging.disable_progress_bar()


def new_model(hidden: int, layers: int, heads: int, intermediate: int, seed: int) -> LlamaForCausalLM:
    """A tiny Llama-architecture causal LM over the 19-token vocabulary (tied embeddings, sdpa)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=heads, intermediate_size=intermediate, max_position_embeddings=128,
        tie_word_embeddings=True, pad_token_id=VOCAB.index(PAD), bos_token_id=VOCAB.index("^"),
        eos_token_id=VOCAB.index(EOS), attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def response_logprobs(model, prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int,
                      with_inputs: bool = False):
    """Teacher-forced log-probabilities of each response token: ([rows, T] logp, [rows, T] mask), and with
    `with_inputs` also (ids, attention, [rows, T, vocab] logits) for a loss that needs the distributions."""
    ids, attention = right_pad([p + r for p, r in zip(prompt_ids, response_ids)], pad_id, "cpu")
    prompt_len = torch.tensor([len(p) for p in prompt_ids]).unsqueeze(1)
    target_mask = (torch.arange(ids.shape[1]) >= prompt_len) & attention.bool()
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    if with_inputs:
        return logp, target_mask[:, 1:], (ids, attention, logits)
    return logp, target_mask[:, 1:]


def length_buckets(lengths: list[int], pass_cost: int = 256) -> list[list[int]]:
    """Row indices in groups, each to be padded to its own longest row instead of the batch's longest: rows sorted
    by length, cut where the padding a cut saves outweighs one more pass (worth `pass_cost` tokens). The toy tasks
    mix 6-token direct answers with 40-token worked ones, so one padded batch would be 40% padding."""
    distinct = sorted(Counter(lengths).items())
    rows_below = [0]
    for _, count in distinct:
        rows_below.append(rows_below[-1] + count)
    # best[j]: the least cost of the rows no longer than distinct[j - 1]; start[j]: where its last group starts
    best, start = [0] + [math.inf] * len(distinct), [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        for i in range(j):
            cost = best[i] + (rows_below[j] - rows_below[i]) * distinct[j - 1][0] + pass_cost
            if cost < best[j]:
                best[j], start[j] = cost, i
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    groups, j = [], len(distinct)
    while j:
        groups.append(order[rows_below[start[j]]:rows_below[j]])
        j = start[j]
    return groups[::-1]


def response_loss(model, prompt_ids: list[list[int]], response_ids: list[list[int]], pad_id: int,
                  advantages: torch.Tensor | None = None, token_advantages: Callable | None = None) -> torch.Tensor:
    """The mean over every response token of -logp, each token weighted by its response's advantage when
    `advantages` are given (turned into per-token ones by `token_advantages`, as in `grpo`). Computed one length
    bucket at a time (`length_buckets`): the same loss as one padded batch, with less padding."""
    loss = torch.zeros(())
    for rows in length_buckets([len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]):
        logp, mask, inputs = response_logprobs(model, [prompt_ids[i] for i in rows], [response_ids[i] for i in rows],
                                               pad_id, with_inputs=True)
        weight = mask.to(logp.dtype)
        if advantages is not None:
            per_token = advantages[rows].unsqueeze(1).expand_as(logp)
            if token_advantages is not None:
                per_token = token_advantages(per_token, *inputs)
            weight = weight * per_token
        loss = loss - (logp * weight).sum()
    return loss / sum(map(len, response_ids))


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def sft(model, tokenizer, steps: int, batch: int, lr: float, noise: Noise, seed: int, width: int) -> list[float]:
    """Supervised fine-tuning on fresh noisy data each step; loss on response tokens only."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, steps, max(1, steps // 20)))
    losses, encode = [], char_encoder(tokenizer)
    model.train()
    for _ in range(steps):
        pairs = [random_operands(rng, width) for _ in range(batch)]
        prompts = [encode(prompt_for(a, b, width)) for a, b in pairs]
        targets = [encode(sft_response(a, b, rng, noise, width)) for a, b in pairs]
        loss = response_loss(model, prompts, targets, tokenizer.pad_token_id)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


def sampled_groups(policy, tokenizer, reward: Callable[[str, str], float], rng: random.Random, prompts_per_step: int,
                   group_size: int, params: SamplingParams, width: int):
    """One step's data: `group_size` samples of `policy` for each of `prompts_per_step` fresh problems (problems,
    then sampling seeds, drawn from `rng`). Returns (prompt ids, samples, rewards)."""
    problems = [random_operands(rng, width) for _ in range(prompts_per_step)]
    encode = char_encoder(tokenizer)
    prompts = [encode(prompt_for(a, b, width)) for a, b in problems for _ in range(group_size)]
    seeds = [rng.randrange(2**62) for _ in prompts]
    policy.eval()
    samples = sample(policy, prompts, seeds, params, tokenizer.eos_token_id, tokenizer.pad_token_id)
    answers = [str(a + b) for a, b in problems for _ in range(group_size)]
    rewards = [reward(tokenizer.decode(s.response_ids), ans) for s, ans in zip(samples, answers)]
    return prompts, samples, rewards


def grpo(model, tokenizer, reward: Callable[[str, str], float], steps: int, prompts_per_step: int,
         group_size: int, lr: float, seed: int, max_new_tokens: int, width: int,
         on_checkpoint: Callable[[int], None], checkpoint_every: int, token_advantages: Callable | None = None
         ) -> list[float]:
    """GRPO with 0/1 rewards: group-normalised advantages, token-level policy-gradient loss, no KL term.
    One update per batch of fresh on-policy samples, so the PPO ratio is 1 and clipping never binds.
    `token_advantages(advantages [rows, T], ids, attention, logits)`, when given, turns each response's advantage
    (broadcast over its tokens) into per-token advantages, e.g. divergence-weighted ones."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    mean_rewards = []
    for step in range(1, steps + 1):
        prompts, samples, rewards = sampled_groups(model, tokenizer, reward, rng, prompts_per_step, group_size, params,
                                                   width)
        r = torch.tensor(rewards).view(prompts_per_step, group_size)
        adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()
        model.train()
        loss = response_loss(model, prompts, [s.response_ids for s in samples], tokenizer.pad_token_id, adv,
                             token_advantages)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        mean_rewards.append(float(r.mean()))
        if step % checkpoint_every == 0 or step == steps:
            on_checkpoint(step)
    return mean_rewards


def rejection_sft(model, teacher, tokenizer, reward: Callable[[str, str], float], steps: int, prompts_per_step: int,
                  group_size: int, lr: float, seed: int, max_new_tokens: int, width: int,
                  on_checkpoint: Callable[[int], None], checkpoint_every: int) -> list[float]:
    """Supervised fine-tuning on `teacher`'s correct samples, rejection-sampling style, with GRPO's budget: each
    step samples `group_size` responses of `teacher` to `prompts_per_step` fresh problems (the same sampler and
    temperature as GRPO), keeps the ones `reward` calls correct and takes one step of next-token loss on them.
    Returns the share kept at each step."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
    kept_shares = []
    for step in range(1, steps + 1):
        prompts, samples, rewards = sampled_groups(teacher, tokenizer, reward, rng, prompts_per_step, group_size,
                                                   params, width)
        kept = [(p, s.response_ids) for p, s, right in zip(prompts, samples, rewards) if right > 0]
        kept_shares.append(len(kept) / len(prompts))
        if kept:
            model.train()
            loss = response_loss(model, [p for p, _ in kept], [r for _, r in kept], tokenizer.pad_token_id)
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.eval()
        if step % checkpoint_every == 0 or step == steps:
            on_checkpoint(step)
    return kept_shares
