"""The model-bound paths on a CUDA device, with the same code as on CPU: lockstep cross-sampling and the
paired pass. Marked `gpu`; skipped where no CUDA device is present (CI has none)."""

import math

import numpy as np
import pytest
import torch

from compute.cross_sampling import SwitchRule, cross_sample
from compute.paired import PairedParams, paired_metrics
from compute.reference import ReencodingDecoder
from compute.sampling import SamplingParams, sample
from tests.compute.test_paired import VOCAB, tiny_model

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
EOS, PAD = 3, 0


def _pair(dtype):
    return tiny_model(5).to("cuda", dtype), tiny_model(6).to("cuda", dtype)


def _prompts(n):
    g = torch.Generator().manual_seed(0)
    return [torch.randint(4, VOCAB, (int(k),), generator=g).tolist() for k in torch.randint(2, 7, (n,), generator=g)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_never_switching_is_single_model_sampling_on_cuda(dtype):
    """The identity of the CPU tests, on the GPU and in bf16: eps=+inf forward is the base sampling alone."""
    base, rl = _pair(dtype)
    prompts, seeds = _prompts(32), list(range(32))
    params = SamplingParams(top_p=0.9, max_new_tokens=16)
    alone = sample(base, prompts, seeds, params, EOS, PAD)
    got = cross_sample(base, rl, prompts, seeds, [SwitchRule("forward", "js", math.inf)] * 32, params, EOS, PAD)
    assert [g.response_ids for g in got] == [a.response_ids for a in alone]
    assert all(g.switched_positions == [] for g in got)


def test_kv_cache_lockstep_equals_reencoding_on_cuda_float32():
    base, rl = _pair(torch.float32)
    prompts, seeds = _prompts(16), list(range(16))
    rules = [SwitchRule("forward" if i % 2 else "reverse", "js", 0.05) for i in range(16)]
    params = SamplingParams(max_new_tokens=12)
    fast = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD)
    slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
    assert [(f.response_ids, f.switched_positions) for f in fast] == [(s.response_ids, s.switched_positions) for s in slow]


def test_paired_pass_on_cuda_matches_cpu():
    base_cpu, rl_cpu = tiny_model(1), tiny_model(2)
    prompts = _prompts(8)
    responses = [p[::-1] + [5, 6] for p in prompts]
    cpu = paired_metrics(base_cpu, rl_cpu, prompts, responses, PAD, PairedParams(4, 7))
    gpu = paired_metrics(base_cpu.to("cuda"), rl_cpu.to("cuda"), prompts, responses, PAD, PairedParams(4, 7))
    for name in ("js", "kl_rl_base", "entropy_base", "logp_rl"):
        np.testing.assert_allclose(gpu[name], cpu[name], atol=1e-4, rtol=1e-4, err_msg=name)
    assert (gpu["token_id"] == cpu["token_id"]).all()
