"""`shiftlake bench [--only paired,cross,demo,checks,sensor,s3,ray]`: the throughput of the study's two
model-bound stages (`throughput`), the product's times end to end on the toy world (`stages`), and cross-sampling
on 1 vs 2 Ray workers (`cluster`, only when asked: --only ray); each part is described there. Models: the toy world's base and last RL checkpoint, and a Qwen2.5-1.5B-shaped pair with
random weights (same code paths; few tokens on CPU)."""

from __future__ import annotations

import os
import time

import torch

from compute.models import auto_device
from compute.sampling import SamplingParams
from orchestration.bench.stages import bench_demo, bench_s3, bench_sensor
from orchestration.bench.throughput import bench_cross, bench_paired_qwen, bench_paired_toy, qwen_pair, toy_pair


PARTS = ("paired", "cross", "demo", "checks", "sensor", "s3", "ray")
DEFAULT = PARTS[:-1]


def main(only: tuple[str, ...] = DEFAULT) -> None:
    torch.set_num_threads(int(os.environ.get("SHIFTLAKE_BENCH_THREADS", torch.get_num_threads())))
    device = auto_device()
    cpu = device.type == "cpu"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}")
    if "paired" in only or "cross" in only:
        base, rl = toy_pair()
        if "paired" in only:
            bench_paired_toy(base, rl)
        if "cross" in only:
            from compute.toyworld.task import prompt_for
            from compute.toyworld.tokenizer import build_tokenizer

            tok = build_tokenizer()
            g = torch.Generator().manual_seed(0)
            pairs = torch.randint(0, 10_000, (256, 2), generator=g).tolist()
            prompts = [tok.encode(prompt_for(a, b), add_special_tokens=False) for a, b in pairs]
            bench_cross("toy pair", base, rl, prompts, SamplingParams(max_new_tokens=48),
                        tok.eos_token_id, tok.pad_token_id)
        t = time.perf_counter()
        base, rl = qwen_pair(device)
        print(f"Qwen2.5-1.5B-shaped random pair: init {time.perf_counter() - t:.0f} s")
        if "paired" in only:
            bench_paired_qwen(base, rl, n_seqs=2 if cpu else 16, prompt_len=32 if cpu else 256,
                              response_len=32 if cpu else 512)
        if "cross" in only:
            rows, prompt_len, new = (2, 16, 8) if cpu else (64, 256, 128)
            g = torch.Generator().manual_seed(0)
            prompts = [torch.randint(0, base.config.vocab_size, (prompt_len,), generator=g).tolist()
                       for _ in range(rows)]
            eos = base.config.vocab_size - 1  # random weights: rows almost always decode all `new` tokens
            bench_cross(f"Qwen2.5-1.5B-shaped random pair ({device}, {base.dtype}, prompt {prompt_len})", base,
                        rl, prompts, SamplingParams(max_new_tokens=new), eos_id=eos, pad_id=0)
        del base, rl
    if "demo" in only or "checks" in only:
        bench_demo(checks="checks" in only)
    if "sensor" in only:
        bench_sensor()
    if "s3" in only:
        bench_s3()
    if "ray" in only:
        from orchestration.bench.cluster import bench_ray

        bench_ray()


def cli(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="shiftlake bench", description=__doc__)
    parser.add_argument("--only", default=",".join(DEFAULT), help=f"comma-separated subset of {','.join(PARTS)}")
    only = tuple(p for p in parser.parse_args(argv).only.split(",") if p)
    if not only or set(only) - set(PARTS):
        parser.error(f"--only takes a comma-separated subset of {','.join(PARTS)}")
    main(only)
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
