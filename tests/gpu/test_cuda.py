"""The model-bound paths on a CUDA device, with the same code as on CPU: lockstep cross-sampling and the
paired pass. Marked `gpu`; skipped where no CUDA device is present (CI has none)."""

import math

import numpy as np
import pytest
import torch

from compute.cross_sampling import SwitchRule, cross_sample
from compute.paired import PairedParams, paired_metrics
from compute.reencoding import ReencodingDecoder
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


def _gqa_pair(dtype):
    """Qwen2-shaped (grouped key/value heads, as the real models): the grouped decode attention is exercised."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    models = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=128, pad_token_id=PAD)
        models.append(Qwen2ForCausalLM(config).eval().to("cuda", dtype))
    return models


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_decoding_equals_eager_decoding(dtype):
    """The captured step replays the kernels the eager step runs: same tokens, same switches, in bf16 too."""
    base, rl = _gqa_pair(dtype)
    prompts, seeds = _prompts(48), list(range(48))
    rules = [SwitchRule(("forward", "reverse")[i % 2], ("js", "delta_logp", "entropy")[i % 3], 0.05) for i in range(48)]
    params = SamplingParams(top_p=0.9, max_new_tokens=40)
    graphed = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, graph=True)
    eager = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, graph=False)
    assert [(g.response_ids, g.switched_positions) for g in graphed] == [(e.response_ids, e.switched_positions) for e in eager]
    assert [s.response_ids for s in sample(base, prompts, seeds, params, EOS, PAD, graph=True)] == \
        [s.response_ids for s in sample(base, prompts, seeds, params, EOS, PAD, graph=False)]


def test_cuda_graph_lockstep_equals_reencoding_in_float32():
    base, rl = _gqa_pair(torch.float32)
    prompts, seeds = _prompts(16), list(range(16))
    rules = [SwitchRule("forward" if i % 2 else "reverse", "js", 0.05) for i in range(16)]
    params = SamplingParams(max_new_tokens=12)
    fast = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, graph=True)
    slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
    assert [(f.response_ids, f.switched_positions) for f in fast] == [(s.response_ids, s.switched_positions) for s in slow]


def test_bf16_paired_pass_agrees_with_a_float64_recompute():
    """Tolerances stated: the compiled float32 metrics equal a float64 recompute from the same bf16 logits within
    1e-4 (nats); the whole bf16 pass (one prefill per prompt, then the responses) within 0.02 nats of a float64
    forward of the same weights, and the same token ids."""
    from compute.metrics import token_metrics
    from compute.paired import _Metrics

    base, rl = _gqa_pair(torch.bfloat16)
    g = torch.Generator().manual_seed(1)
    logits_b, logits_r = [(torch.randn(300, VOCAB, generator=g) * 3).to("cuda", torch.bfloat16) for _ in range(2)]
    targets = torch.randint(0, VOCAB, (300,), generator=g).to("cuda")
    compiled = _Metrics(256, torch.device("cuda"), compile=True)
    fast = {k: torch.cat([compiled(logits_b[i:i + 256], logits_r[i:i + 256], targets[i:i + 256])[k]
                          for i in (0, 256)]) for k in ("js", "kl_rl_base", "kl_base_rl", "entropy_base")}
    exact = token_metrics(logits_b.double(), logits_r.double(), targets)
    for name, got in fast.items():
        torch.testing.assert_close(got.double(), exact[name].double(), atol=1e-4, rtol=1e-4, msg=name)

    prompts = [p for p in _prompts(6) for _ in range(3)]
    responses = [p[::-1] + [5, 6, 7, 8] for p in prompts]
    got = paired_metrics(base, rl, prompts, responses, PAD)
    want = paired_metrics(base.to("cpu", torch.float64), rl.to("cpu", torch.float64), prompts, responses, PAD,
                          PairedParams(compile=False))
    for name in ("js", "kl_rl_base", "kl_base_rl", "entropy_base", "entropy_rl", "logp_base", "logp_rl"):
        np.testing.assert_allclose(got[name], want[name], atol=0.02, rtol=0.02, err_msg=name)
    assert (got["token_id"] == want["token_id"]).all()


def test_compiled_steps_in_the_cuda_graph_equal_reencoding_in_float32():
    """torch.compile's kernels inside the loop's CUDA graph: the re-encoding decoder's tokens and switches."""
    base, rl = _gqa_pair(torch.float32)
    prompts, seeds = _prompts(16), list(range(16))
    rules = [SwitchRule("forward" if i % 2 else "reverse", "js", 0.05) for i in range(16)]
    params = SamplingParams(max_new_tokens=12)
    fast = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, graph=True, compile=True)
    slow = cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, decoder=ReencodingDecoder)
    assert [(f.response_ids, f.switched_positions) for f in fast] == [(s.response_ids, s.switched_positions) for s in slow]


def test_bf16_compiled_steps_agree_with_eager_steps_within_rounding():
    """In bf16 compiled kernels round differently from eager ones, so tokens may part: fed the same tokens, each
    step's next-token distribution stays within JS 1e-3 nats of the eager step's."""
    from compute.decoders import StaticDecoder
    from compute.metrics import js_divergence

    base, _ = _gqa_pair(torch.bfloat16)
    prompts = _prompts(32)
    eager, compiled = (StaticDecoder(base, prompts, PAD, 16, compile=c) for c in (False, True))
    got = [d.start() for d in (eager, compiled)]
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(16):
        token = torch.randint(4, VOCAB, (len(prompts),), device="cuda", generator=g)
        got = [d.step(token) for d in (eager, compiled)]
        js = js_divergence(*(torch.log_softmax(x.float(), -1) for x in got))
        assert js.max().item() < 1e-3, js.max().item()
