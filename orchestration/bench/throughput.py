"""Throughput of the study's two model-bound stages, on the toy pair and a Qwen2.5-1.5B-shaped random pair.

paired  tokens/s of the teacher-forced paired pass (compute.paired)
cross   tokens/s of lockstep cross-sampling (compute.cross_sampling, one KV cache per model) against two
        references on the same prompts and seeds: one model's `generate` (KV cache, no second model) and
        the same lockstep with a decoder that re-encodes the whole prefix every step (no KV cache)
"""

from __future__ import annotations

import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from compute.checkpoints import discover_checkpoints
from compute.cross_sampling import SwitchRule, cross_sample
from compute.decoders import left_pad
from compute.models import auto_dtype, load_model
from compute.paired import PairedParams, paired_metrics
from compute.reencoding import ReencodingDecoder
from compute.sampling import SamplingParams
from compute.toyworld.world import build_world

QWEN25_15B = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                  num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                  rope_theta=1e6, tie_word_embeddings=True)


def _throughput(base, rl, prompts, responses, pad_id, params, repeats: int) -> float:
    paired_metrics(base, rl, prompts[:1], responses[:1], pad_id, params)  # warm-up
    n = sum(map(len, responses))
    t = time.perf_counter()
    for _ in range(repeats):
        paired_metrics(base, rl, prompts, responses, pad_id, params)
    return n * repeats / (time.perf_counter() - t)


def toy_pair():
    world = build_world()
    base = load_model(world / "base")
    rl = load_model(discover_checkpoints(world / "checkpoints")[-1].uri)  # the last step
    return base.model, rl.model


def qwen_pair(device):
    """Two random-weight models, initialised on `device` (seconds on a GPU rather than minutes on its CPU)."""
    config = Qwen2Config(**QWEN25_15B)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with torch.device(device):
            models.append(AutoModelForCausalLM.from_config(config, dtype=auto_dtype(device)).eval())
    return models


def _params_b(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e9:.2f}B" if n > 1e8 else f"{n:,}"


def bench_paired_toy(base, rl) -> None:
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 19, (11,), generator=g).tolist() for _ in range(256)]
    responses = [torch.randint(1, 19, (36,), generator=g).tolist() for _ in range(256)]
    tps = _throughput(base, rl, prompts, responses, 0, PairedParams(64, 2048), repeats=3)
    print(f"paired pass, toy pair ({_params_b(base)} params each, {base.device}): {tps:,.0f} tokens/s "
          f"over {256 * 36:,} tokens")


def bench_paired_qwen(base, rl, n_seqs: int, prompt_len: int, response_len: int) -> None:
    vocab = base.config.vocab_size
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, vocab, (prompt_len,), generator=g).tolist() for _ in range(n_seqs)]
    responses = [torch.randint(0, vocab, (response_len,), generator=g).tolist() for _ in range(n_seqs)]
    chunk = 256 if base.device.type == "cpu" else 2048
    tps = _throughput(base, rl, prompts, responses, 0, PairedParams(n_seqs, chunk), repeats=2)
    print(f"paired pass, Qwen2.5-1.5B-shaped random pair ({_params_b(base)} params each, {base.device}, "
          f"{base.dtype}): {tps:,.1f} tokens/s over {n_seqs}x{response_len} response tokens "
          f"(prompt {prompt_len}, vocab chunk {chunk})")


def _timed(fn) -> tuple[object, float]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def bench_cross(label: str, base, rl, prompts: list[list[int]], params: SamplingParams, eos_id: int,
                pad_id: int, naive: bool = True) -> None:
    """Lockstep cross-sampling (forward, js > 0.1) vs one-model `generate` vs re-encoding lockstep."""
    seeds = list(range(len(prompts)))
    rules = [SwitchRule("forward", "js", 0.1)] * len(prompts)
    warm = SamplingParams(max_new_tokens=2)  # same batch shape, so kernels and allocations are warm
    cross_sample(base, rl, prompts, seeds, rules, warm, eos_id, pad_id)
    fast, t_fast = _timed(lambda: cross_sample(base, rl, prompts, seeds, rules, params, eos_id, pad_id))
    n_fast = sum(len(f.response_ids) for f in fast)
    ids, mask = left_pad(prompts, pad_id, base.device)
    gen_kwargs = dict(do_sample=True, max_new_tokens=params.max_new_tokens, temperature=params.temperature,
                      top_p=params.top_p, top_k=0, eos_token_id=eos_id, pad_token_id=pad_id)
    with torch.inference_mode():
        base.generate(input_ids=ids, attention_mask=mask, **{**gen_kwargs, "max_new_tokens": 2})
        out, t_gen = _timed(lambda: base.generate(input_ids=ids, attention_mask=mask, **gen_kwargs))
    new = out[:, ids.shape[1]:].tolist()
    n_gen = sum(row.index(eos_id) + 1 if eos_id in row else len(row) for row in new)
    line = (f"cross-sampling, {label}, {len(prompts)} rows x <= {params.max_new_tokens} new tokens: lockstep "
            f"(2 models, KV caches) {n_fast / t_fast:,.1f} tokens/s; one-model generate {n_gen / t_gen:,.1f} "
            f"tokens/s ({t_fast / n_fast / (t_gen / n_gen):.2f}x the lockstep's time per token)")
    if naive:
        slow, t_slow = _timed(lambda: cross_sample(base, rl, prompts, seeds, rules, params, eos_id, pad_id,
                                                   decoder=ReencodingDecoder))
        same = [s.response_ids for s in slow] == [f.response_ids for f in fast]
        line += (f"; re-encoding lockstep {n_fast / t_slow:,.1f} tokens/s (lockstep {t_slow / t_fast:.1f}x "
                 f"faster; same tokens: {'yes' if same else 'NO'})")
    print(line)
