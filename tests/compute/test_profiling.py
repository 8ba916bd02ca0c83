"""`compute.profiling`: one step's cost is the difference of two runs that differ only in their number of steps."""

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from compute import profiling


def test_per_step_counts_what_one_step_adds_and_nothing_run_once():
    x = torch.full((96, 96), 0.01)

    def run(n):
        y = x.clone()  # once per run: cancels out
        for _ in range(n):
            y = torch.mm(y, x)
        return y.sum()

    cost = profiling.per_step(run, 3, 11, torch.device("cpu"), top=50)
    calls = {name: c for name, c, _ in cost.top}
    assert calls["aten::mm"] == 1
    assert calls.get("aten::clone", 0) == 0 and calls.get("aten::sum", 0) == 0
    assert cost.unit == "ops" and cost.kernels == sum(calls.values())
    assert "aten::mm 1x" in profiling.describe("mm", cost, 1.0)
    wall_only = profiling.per_step(run, 3, 11, torch.device("cpu"), profiled=False)
    assert wall_only.top == [] and "busy" not in profiling.describe("mm", wall_only, 1.0)


def test_read_floor_is_weights_and_kv_over_bandwidth():
    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = Qwen2ForCausalLM(config)
    weights = sum(p.numel() for p in model.parameters()) * 4
    kv = 2 * 2 * 2 * 8 * 5 * 10 * 4  # keys and values, layers, kv heads, head dim, rows, positions, float32
    assert profiling.read_floor([model], 5, 10, 1e9) == (weights + kv) / 1e9 * 1e3
    assert profiling.read_floor([model, model], 5, 10, 1e9) == 2 * (weights + kv) / 1e9 * 1e3
