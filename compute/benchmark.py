"""`python -m compute.benchmark`: the study's three model-bound loops on a random-weight pair, beside plain Hugging
Face references measured in the same run. Needs torch, transformers and numpy only (no dagster, no polars, no
network), so it runs on a bare CUDA image; on a CPU it runs the same code on small shapes.

paired    tokens/s of `compute.paired.paired_metrics` (every token_shifts column) against the plain reference:
          each model's HF forward over the whole padded sequences, then float32 log-softmax, JS, both KLs and both
          entropies over chunks of response positions; peak GPU memory of each
cross     tokens/s of lockstep cross-sampling (`compute.cross_sampling.cross_sample`, a mixed rule grid) at B=64
          and at the batch size `compute.sizing.rows_per_batch` chooses, with and without the CUDA graph
rollouts  tokens/s of `compute.sampling.sample` against HF `generate` (same rows, seeds aside, same length)
compiled  lockstep and rollouts at B=64 and the chosen batch size with each model's decode step under torch.compile
          (`decoders.compiled`, inside the CUDA graph), beside the same loops uncompiled, and the compile time;
          on a GPU only by default (an inductor compile per shape takes minutes on a CPU)
where     where the time goes (`compute.profiling`): the device's copy bandwidth; one lockstep step and one rollout step
          at B=64 and at the chosen batch size, beside the time to read weights and KV once: with the CUDA graph its
          wall time, without it also its kernel time, kernel count and heaviest kernels (each loop's eager step is
          the one the graph captures: the lockstep's row by row); the paired pass's share spent in the two backbones

Options: --model 1.5b|7b|tiny (Qwen2.5 shapes; tiny is the CPU default), --only paired,cross,rollouts,where,compiled,
--new N (new tokens per row), --prompt N, --memory-gib G (cap the GPU at G GiB, e.g. 79 to show a 7B pair on an
80 GB card on a bigger one), --no-eager (no lockstep run without the CUDA graph). Every row runs its full length:
shiftlake's loops get no stop ids and `generate` a minimum length. The default --only adds compiled on a GPU.
Kept whole although over 250 lines: one program, run by name on a bare image, whose stages share the random pair,
the rule grid and the timing; each stage is one function.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from compute import profiling, sizing
from compute.cross_sampling import SwitchRule, cross_sample
from compute.decoders import StaticDecoder, left_pad
from compute.metrics import entropy, js_divergence
from compute.paired import hidden_states, paired_metrics, sequences_per_pass
from compute.sampling import SamplingParams, sample

SHAPES = {
    "1.5b": dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "7b": dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
               num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
    "tiny": dict(vocab_size=4096, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
}
EOS, PAD = 0, 1
NO_STOPS = ()  # shiftlake's loops are given no stop ids and generate a minimum length: every row runs its full length


def pair(shape: str, device: torch.device) -> tuple:
    config = Qwen2Config(**SHAPES[shape], max_position_embeddings=32768, rope_theta=1e6, eos_token_id=EOS,
                         pad_token_id=PAD)
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device.type == "cuda"
                                                     else torch.float32).eval()
        models.append(model)
    return tuple(models)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / sizing.GiB if torch.cuda.is_available() else float("nan")
    return out, time.perf_counter() - t, peak


def random_ids(n: int, length: int, vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, vocab, (n, length), generator=g).tolist()


@torch.inference_mode()
def reference_paired(base, rl, prompts, responses, chunk: int = 2048) -> int:
    """Plain HF: both models' forward over whole padded sequences, then fp32 log-softmax, JS, KLs and entropies
    over chunks of response positions. Returns the number of response tokens."""
    device = next(base.parameters()).device
    seqs = [p + r for p, r in zip(prompts, responses)]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [PAD] * (width - len(s)) for s in seqs], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
    hidden = [m.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state for m in (base, rl)]
    rows = torch.tensor([i for i, r in enumerate(responses) for _ in r], device=device)
    src = torch.tensor([len(p) - 1 + t for p, r in zip(prompts, responses) for t in range(len(r))], device=device)
    sink = torch.zeros((), device=device)
    for lo in range(0, len(rows), chunk):
        sl = slice(lo, lo + chunk)
        lp = [torch.log_softmax(m.get_output_embeddings()(h[rows[sl], src[sl]]).float(), -1)
              for m, h in zip((base, rl), hidden)]
        kl = (lp[1].exp() * (lp[1] - lp[0])).sum(-1) + (lp[0].exp() * (lp[0] - lp[1])).sum(-1)
        sink += (js_divergence(*lp) + kl + entropy(lp[0]) + entropy(lp[1])).sum()
    sink.item()
    return len(rows)


def bench_paired(base, rl, shapes, vocab: int) -> None:
    for n, prompt_len, response_len, per_prompt in shapes:
        prompts = [p for p in random_ids(n // per_prompt, prompt_len, vocab, 1) for _ in range(per_prompt)]
        responses = random_ids(n, response_len, vocab, 2)
        tokens = n * response_len
        paired_metrics(base, rl, prompts[:2], responses[:2], PAD)  # warm-up (and the one compile on CUDA)
        paired_metrics(base, rl, prompts, responses, PAD)
        _, t_fast, m_fast = timed(lambda: paired_metrics(base, rl, prompts, responses, PAD))
        reference_paired(base, rl, prompts[:2], responses[:2])
        _, t_ref, m_ref = timed(lambda: reference_paired(base, rl, prompts, responses))
        print(f"paired  {n}x({prompt_len}+{response_len}), {per_prompt} per prompt: shiftlake {tokens / t_fast:,.0f} tok/s "
              f"(peak {m_fast:.1f} GiB); plain HF {tokens / t_ref:,.0f} tok/s (peak {m_ref:.1f} GiB); "
              f"ratio {t_ref / t_fast:.2f}x", flush=True)


def grid(n: int) -> list[SwitchRule]:
    """A sweep's mix: both directions, js / delta_logp / entropy thresholds and a random control."""
    rules = [SwitchRule("forward", "js", 0.1), SwitchRule("reverse", "js", 0.01), SwitchRule("forward", "delta_logp", 1.0),
             SwitchRule("reverse", "entropy", 0.3), SwitchRule("forward", "random", 0.1, 0.05)]
    return [rules[i % len(rules)] for i in range(n)]


def bench_cross(base, rl, rows: list[int], prompt_len: int, new: int, vocab: int, variants: tuple) -> None:
    """`variants`: with and without the CUDA graph, at each batch size."""
    params = SamplingParams(max_new_tokens=new)
    for b in rows:
        prompts = random_ids(b, prompt_len, vocab, 3)
        seeds, rules = list(range(b)), grid(b)
        for graph in variants:
            run = dict(graph=graph)
            _, t_warm, _ = timed(lambda: cross_sample(base, rl, prompts, seeds, rules, SamplingParams(max_new_tokens=4),
                                                      NO_STOPS, PAD, **run))
            out, t, peak = timed(lambda: cross_sample(base, rl, prompts, seeds, rules, params, NO_STOPS, PAD, **run))
            tokens = sum(len(o.response_ids) for o in out)
            switched = sum(len(o.switched_positions) for o in out) / max(tokens, 1)
            print(f"cross   B={b} prompt {prompt_len} + {new} new, CUDA graph {'on' if graph else 'off'} "
                  f"(warm-up {t_warm:.0f} s): "
                  f"{tokens / t:,.0f} tok/s ({tokens:,} tokens in {t:.1f} s, {switched:.1%} switched, peak {peak:.1f} GiB)",
                  flush=True)


def bench_rollouts(model, rows: list[int], prompt_len: int, new: int, vocab: int) -> None:
    params = SamplingParams(max_new_tokens=new)
    for b in rows:
        prompts = random_ids(b, prompt_len, vocab, 4)
        seeds = list(range(b))
        sample(model, prompts, seeds, SamplingParams(max_new_tokens=4), NO_STOPS, PAD)
        out, t, peak = timed(lambda: sample(model, prompts, seeds, params, NO_STOPS, PAD))
        tokens = sum(len(o.response_ids) for o in out)
        ids, mask = left_pad(prompts, PAD, next(model.parameters()).device)
        kwargs = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, eos_token_id=EOS, pad_token_id=PAD)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, **kwargs)
            gen, t_gen, peak_gen = timed(lambda: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new,
                                                                min_new_tokens=new, **kwargs))
        gen_tokens = (gen.shape[1] - ids.shape[1]) * b
        print(f"rollout B={b} prompt {prompt_len} + {new} new: shiftlake {tokens / t:,.0f} tok/s (peak {peak:.1f} GiB); "
              f"HF generate {gen_tokens / t_gen:,.0f} tok/s (peak {peak_gen:.1f} GiB); ratio {t_gen / gen_tokens / (t / tokens):.2f}x",
              flush=True)


def bench_compiled(base, rl, rows: list[int], prompt_len: int, new: int, vocab: int) -> None:
    """Each loop with its models' decode steps compiled beside the same loop uncompiled, in one run: the first
    compiled call (same shapes: the static KV buffers' length is prompt + new) compiles, the second is timed."""
    params = SamplingParams(max_new_tokens=new)
    for b in rows:
        prompts, seeds, rules = random_ids(b, prompt_len, vocab, 3), list(range(b)), grid(b)
        loops = {"cross  ": lambda compile: cross_sample(base, rl, prompts, seeds, rules, params, NO_STOPS, PAD,
                                                         compile=compile),
                 "rollout": lambda compile: sample(base, prompts, seeds, params, NO_STOPS, PAD, compile=compile)}
        for name, run in loops.items():
            run(False)
            _, t_plain, _ = timed(lambda: run(False))
            _, t_compile, _ = timed(lambda: run(True))
            out, t, peak = timed(lambda: run(True))
            tokens = sum(len(o.response_ids) for o in out)
            print(f"{name} B={b} prompt {prompt_len} + {new} new, compiled steps: {tokens / t:,.0f} tok/s (peak "
                  f"{peak:.1f} GiB; first call with the compile {t_compile:.0f} s); uncompiled {tokens / t_plain:,.0f} "
                  f"tok/s; ratio {t_plain / t:.2f}x", flush=True)


@torch.inference_mode()
def backbones(base, rl, prompts, responses) -> None:
    """The part of `paired_metrics` before the vocabulary: both backbones over the same passes."""
    device = next(base.parameters()).device
    batch = sequences_per_pass([len(p) + len(r) for p, r in zip(prompts, responses)], device)
    for start in range(0, len(prompts), batch):
        for m in (base, rl):
            hidden_states(m, prompts[start: start + batch], responses[start: start + batch], PAD)


def bench_where(base, rl, rows: list[int], prompt_len: int, steps: tuple[int, int], paired_shape, vocab: int) -> None:
    """`steps`: the two lengths whose difference is profiled (`profiling.per_step`), at each batch size of `rows`."""
    device = next(base.parameters()).device
    cuda = device.type == "cuda"
    bandwidth = profiling.copy_bandwidth(device, 1.0 if cuda else 0.125)
    print(f"where   copy bandwidth on {device.type}: {bandwidth / 1e9:,.0f} GB/s (read + write)", flush=True)
    for b in rows:
        prompts, seeds, rules = random_ids(b, prompt_len, vocab, 3), list(range(b)), grid(b)
        length = prompt_len + steps[1]

        def lockstep(n, graph):  # without the graph: the row-by-row step the graph captures, not the shared path
            decoder = None if graph else partial(StaticDecoder, new_tokens=n)
            return cross_sample(base, rl, prompts, seeds, rules, SamplingParams(max_new_tokens=n), NO_STOPS, PAD,
                                graph=graph, decoder=decoder)

        loops = {"lockstep": ([base, rl], lockstep),
                 "rollout": ([base], lambda n, graph: sample(base, prompts, seeds, SamplingParams(max_new_tokens=n),
                                                             NO_STOPS, PAD, graph=graph))}
        for name, (models, decode) in loops.items():
            for graph in ((True, False) if cuda else (False,)):  # with the graph: wall time only
                cost = profiling.per_step(lambda n: decode(n, graph), *steps, device, profiled=not graph)
                floor = profiling.read_floor(models, b, length, bandwidth)
                print(profiling.describe(f"{name} B={b}, CUDA graph {'on' if graph else 'off'}", cost, floor),
                      flush=True)
    n, p_len, r_len = paired_shape
    prompts, responses = random_ids(n, p_len, vocab, 1), random_ids(n, r_len, vocab, 2)
    paired_metrics(base, rl, prompts, responses, PAD)
    _, whole, _ = timed(lambda: paired_metrics(base, rl, prompts, responses, PAD))
    _, body, _ = timed(lambda: backbones(base, rl, prompts, responses))
    print(f"where   paired {n}x({p_len}+{r_len}): the two backbones take {body / whole:.0%} of the pass "
          f"({body:.2f} of {whole:.2f} s); the vocabulary projection and the metrics the rest", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=sorted(SHAPES), default="1.5b" if device.type == "cuda" else "tiny")
    ap.add_argument("--only", default="paired,cross,rollouts,where" + (",compiled" if device.type == "cuda" else ""))
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=512 if device.type == "cuda" else 32)
    ap.add_argument("--memory-gib", type=float, default=None)
    ap.add_argument("--no-eager", action="store_true", help="skip the lockstep runs without a CUDA graph")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    if args.memory_gib and device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_gib * sizing.GiB / total), torch.cuda.current_device())
        sizing.DEVICE_LIMIT = int(args.memory_gib * sizing.GiB)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {what}; torch {torch.__version__}; transformers {__import__('transformers').__version__}; "
          f"model {args.model}-shaped random pair", flush=True)
    t = time.perf_counter()
    base, rl = pair(args.model, device)
    vocab = base.config.vocab_size
    print(f"pair ready in {time.perf_counter() - t:.1f} s ({sum(p.numel() for p in base.parameters()) / 1e9:.2f}B "
          f"parameters each, {next(base.parameters()).dtype})", flush=True)
    small, cuda = device.type == "cpu", device.type == "cuda"
    chosen = sizing.rows_per_batch([base, rl], args.prompt, args.new)
    print(f"rows per batch chosen for lockstep (prompt {args.prompt} + {args.new}): {chosen}; for rollouts: "
          f"{sizing.rows_per_batch([base], args.prompt, args.new)}", flush=True)
    stages = {
        "paired": lambda: bench_paired(base, rl, [(8, 64, 64, 4)] if small else
                                       [(16, 256, 512, 1), (8, 64, 2048, 1), (64, 256, 512, 1), (64, 256, 512, 16)], vocab),
        "cross": lambda: bench_cross(base, rl, sorted({64, chosen}), args.prompt, args.new, vocab,
                                     (cuda,) + ((False,) if cuda and not args.no_eager else ())),
        "rollouts": lambda: bench_rollouts(base, sorted({64, sizing.rows_per_batch([base], args.prompt, args.new)}),
                                           args.prompt, args.new, vocab),
        "where": lambda: bench_where(base, rl, sorted({64, chosen}), args.prompt, (4, 12) if small else (16, 80),
                                     (8, 64, 64) if small else (64, 256, 512), vocab),
        "compiled": lambda: bench_compiled(base, rl, sorted({64, chosen}), args.prompt, args.new, vocab),
    }
    for name, run in stages.items():
        if name in only:
            try:
                run()
            except Exception as e:  # one stage failing still leaves the others' figures
                print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
