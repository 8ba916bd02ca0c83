"""`shiftlake bench`: paired-extraction throughput and the demo's wall time per stage.

Prints: tokens/s of the teacher-forced paired pass (compute.paired) on the toy world's base/RL pair and on
a Qwen2.5-1.5B-shaped pair with random weights (same code path; few tokens on CPU), then the demo's
seconds per asset on a fresh temporary lake and Dagster instance.
"""

from __future__ import annotations

import os
import tempfile
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from compute.models import auto_device, auto_dtype, load_model
from compute.paired import PairedParams, paired_metrics
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


def bench_toy() -> None:
    world = build_world()
    base = load_model(world / "base")
    rl = load_model(sorted((world / "checkpoints").iterdir(), key=lambda p: int(p.name.split("-")[1]))[-1])
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 19, (11,), generator=g).tolist() for _ in range(256)]
    responses = [torch.randint(1, 19, (36,), generator=g).tolist() for _ in range(256)]
    tps = _throughput(base.model, rl.model, prompts, responses, 0, PairedParams(64, 2048), repeats=3)
    print(f"paired pass, toy pair ({sum(p.numel() for p in base.model.parameters()):,} params each, "
          f"{base.model.device}): {tps:,.0f} tokens/s over {256 * 36:,} tokens")


def bench_qwen_shaped(n_seqs: int, prompt_len: int, response_len: int) -> None:
    device = auto_device()
    config = Qwen2Config(**QWEN25_15B)
    t = time.perf_counter()
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config, dtype=auto_dtype(device)).to(device).eval()
    torch.manual_seed(1)
    rl = AutoModelForCausalLM.from_config(config, dtype=auto_dtype(device)).to(device).eval()
    init_s = time.perf_counter() - t
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, config.vocab_size, (prompt_len,), generator=g).tolist() for _ in range(n_seqs)]
    responses = [torch.randint(0, config.vocab_size, (response_len,), generator=g).tolist() for _ in range(n_seqs)]
    chunk = 256 if device.type == "cpu" else 2048
    tps = _throughput(base, rl, prompts, responses, 0, PairedParams(n_seqs, chunk), repeats=2)
    print(f"paired pass, Qwen2.5-1.5B-shaped random pair ({sum(p.numel() for p in base.parameters()) / 1e9:.2f}B "
          f"params each, {device}, {auto_dtype(device)}, init {init_s:.0f} s): {tps:,.1f} tokens/s over "
          f"{n_seqs}x{response_len} response tokens (prompt {prompt_len}, vocab chunk {chunk})")


def bench_demo() -> None:
    from orchestration.demo import run_demo

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LAKE_URL"] = os.path.join(tmp, "lake")
        os.environ["DAGSTER_HOME"] = os.path.join(tmp, "dagster")
        timings = run_demo(log=lambda *_: None)
    print("demo wall time per stage (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))


def main() -> None:
    torch.set_num_threads(int(os.environ.get("SHIFTLAKE_BENCH_THREADS", torch.get_num_threads())))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_toy()
    cpu = auto_device().type == "cpu"
    bench_qwen_shaped(n_seqs=2 if cpu else 16, prompt_len=32 if cpu else 256, response_len=32 if cpu else 512)
    bench_demo()


if __name__ == "__main__":
    main()
