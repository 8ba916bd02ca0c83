"""`python -m compute.toyworld.grpo_writer OUT`: rerun the toy world's GRPO from its cached base, writing
`OUT/checkpoint-<step>/` as training goes, the way a real RL run fills its checkpoint folder. Used by
`shiftlake demo --live`; the checkpoints equal the world's own (same seeds), arriving one by one."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from compute.toyworld.tokenizer import build_tokenizer
from compute.toyworld.world import build_world, load_model, named_config, train_rl


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (leave the rest to the analysis)")
    args = parser.parse_args(argv)
    config = named_config()
    world = build_world(config)
    torch.set_num_threads(args.threads)
    model = load_model(world / "base")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_rl(config, model, build_tokenizer(), args.out,
             log=lambda msg: print(f"[toy GRPO {time.perf_counter() - t0:5.0f} s] {msg}", flush=True))


if __name__ == "__main__":
    main()
