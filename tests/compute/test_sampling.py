"""Seeded sampling: reproducible per rollout, independent of the batch, and distributed as asked."""

import pytest
import torch

from compute.sampling import RowGenerators, SamplingParams, draw, next_token_probs, sample
from tests.compute.test_paired import VOCAB, tiny_model

EOS, PAD = 3, 0


@pytest.fixture(scope="module")
def model():
    return tiny_model(5)


def test_same_seed_same_tokens_whatever_the_batch(model):
    """A row's tokens depend on its seed and prompt only: alone, in a batch, or in another order."""
    prompts = [[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [5, 6, 7, 8]]
    seeds = [11, 12, 13, 14]
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12)
    together = sample(model, prompts, seeds, params, EOS, PAD)
    again = sample(model, prompts, seeds, params, EOS, PAD)
    alone = [sample(model, [p], [s], params, EOS, PAD)[0] for p, s in zip(prompts, seeds)]
    reversed_ = sample(model, prompts[::-1], seeds[::-1], params, EOS, PAD)[::-1]
    assert [r.response_ids for r in together] == [r.response_ids for r in again]
    assert [r.response_ids for r in together] == [r.response_ids for r in alone]
    assert [r.response_ids for r in together] == [r.response_ids for r in reversed_]
    # same prompt, other seed: a different draw (12 tokens from 23 ids; equal by chance ~never)
    assert together[0].response_ids != together[3].response_ids


def test_responses_stop_at_eos_or_length(model):
    out = sample(model, [[1, 2]] * 32, list(range(32)), SamplingParams(max_new_tokens=6), EOS, PAD)
    for r in out:
        assert 1 <= len(r.response_ids) <= 6
        assert EOS not in r.response_ids[:-1]
        assert r.finish_reason == ("eos" if r.response_ids[-1] == EOS else "length")
        assert r.finish_reason == "eos" or len(r.response_ids) == 6


def test_top_p_keeps_the_smallest_nucleus_and_renormalises():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    probs = next_token_probs(logits, SamplingParams(top_p=0.8))
    assert probs[0].tolist() == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0])
    probs = next_token_probs(logits, SamplingParams(top_p=0.81))
    assert probs[0, 2] > 0 and probs[0, 3] == 0


def test_temperature_zero_is_greedy_and_draws_follow_the_distribution():
    logits = torch.tensor([[0.1, 2.0, -1.0]])
    assert next_token_probs(logits, SamplingParams(temperature=0)).tolist() == [[0.0, 1.0, 0.0]]
    probs = torch.tensor([[0.2, 0.5, 0.3]]).repeat(20_000, 1)
    u = torch.rand(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    counts = torch.bincount(draw(probs, u), minlength=3) / 20_000
    assert counts.tolist() == pytest.approx([0.2, 0.5, 0.3], abs=0.015)
    assert draw(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0.0])).item() == 1  # never a 0-probability id


@pytest.mark.parametrize("steps", [1, 17, 48, 300])
def test_uniforms_drawn_up_front_are_those_drawn_one_at_a_time(steps):
    """`RowGenerators` draws each row's uniforms in one call; the seeds' streams (and so every stored
    rollout and the toy world's training) must be exactly those of one draw per step."""
    rng = RowGenerators([7, 8], steps)
    gens = [torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)]
    for step in range(steps):
        one_by_one = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in gens])
        assert torch.equal(rng.at(torch.tensor([step])), one_by_one)


class _DropsTheCache(torch.nn.Module):
    """A model whose forward takes the cache keyword but ignores it, as transformers 5.0-5.17 ignored the
    `cache=` that shiftlake once passed: every decode step saw one token without its prefix."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids, attention_mask, position_ids, past_key_values=None, **kw):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask[:, -input_ids.shape[1]:],
                          position_ids=position_ids, **kw)


class _MasksThePrefix(torch.nn.Module):
    """A model that extends the cache it is given but lets decode steps attend to the new token only: the
    cache checks pass, only a re-encode of the prefix shows that the step lost its context."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config

    def forward(self, input_ids, attention_mask, **kw):
        if input_ids.shape[1] == 1 and attention_mask.ndim == 4:  # a prepared additive mask: its last column is new
            attention_mask = torch.full_like(attention_mask, torch.finfo(attention_mask.dtype).min)
            attention_mask[..., -1] = 0
        elif input_ids.shape[1] == 1:
            attention_mask = torch.zeros_like(attention_mask)
            attention_mask[:, -1] = 1
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("broken,match", [(_DropsTheCache, "did not extend the KV cache"),
                                          (_MasksThePrefix, "differs from re-encoding the prefix")])
def test_a_model_that_breaks_cached_decoding_fails_at_the_first_step(broken, match, dtype):
    """Sampling from such a model must raise at once rather than write wrong rollouts, in half precision too
    (where the guard reads the mean log-prob gap over the vocabulary)."""
    from compute.decoders import KVCacheError

    with pytest.raises(KVCacheError, match=match):
        sample(broken(tiny_model(9).to(dtype)), [[5, 6, 7], [8, 9]], [1, 2], SamplingParams(max_new_tokens=4), EOS, PAD)
    # the same model unbroken passes the guard in that precision
    assert len(sample(tiny_model(9).to(dtype), [[5, 6, 7], [8, 9]], [1, 2], SamplingParams(max_new_tokens=4), EOS, PAD)) == 2


def test_the_cached_decoder_equals_re_encoding_on_the_installed_transformers():
    """The same check the floor test runs on the lowest transformers pyproject accepts (test_floor.py)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("kv_cache_check.py")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KV-cache decoding equals re-encoding" in done.stdout


def test_huge_but_finite_logits_do_not_trip_the_guard():
    """A checkpoint with a few flipped weight bits gives logits of 1e20 and more: cached and re-encoded steps
    then differ by float rounding alone, far above 1e-3 in absolute terms. The guard is for a lost prefix,
    not for rounding, so its tolerance grows with the logits' magnitude."""
    model = tiny_model(11)
    with torch.no_grad():
        model.lm_head.weight.mul_(1e20)
    out = sample(model, [[5, 6, 7], [8, 9]], [1, 2], SamplingParams(max_new_tokens=4), EOS, PAD)
    assert all(1 <= len(r.response_ids) <= 4 for r in out)


@pytest.mark.parametrize("heads,groups", [(4, 2), (6, 1), (4, 4)])
def test_grouped_decode_attention_equals_stock_sdpa(heads, groups):
    """One query per row against shared key/value heads, without copying the cache per query head, gives the
    stock sdpa path's output (which repeats the keys and values), masked positions included."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from compute.decoders import grouped_decode_attention

    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, heads, 1, 8, generator=g)
    k, v = torch.randn(2, 3, groups, 10, 8, generator=g).unbind(0)
    mask = torch.zeros(3, 1, 1, 10).masked_fill_(torch.rand(3, 1, 1, 10, generator=g) < 0.3, torch.finfo(torch.float32).min)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = heads // groups, True
    got, _ = grouped_decode_attention(module, q, k, v, mask, scaling=0.3)
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
    assert got.shape == want.shape == (3, 1, heads, 8)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_static_and_dynamic_cache_decoding_give_the_same_tokens():
    """The preallocated decoder (one prefill per distinct prompt, rows dropped as they end) and the growing-cache
    decoder sample the same tokens in float32."""
    from compute.decoders import Decoder

    model = tiny_model(5)
    prompts = [[5, 6, 7, 8], [9, 10], [5, 6, 7, 8], [13, 14, 15], [9, 10]] * 3
    seeds = list(range(len(prompts)))
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=20)
    static = sample(model, prompts, seeds, params, EOS, PAD, check_every=1)
    dynamic = sample(model, prompts, seeds, params, EOS, PAD, decoder=Decoder)
    assert [(r.response_ids, r.finish_reason) for r in static] == [(r.response_ids, r.finish_reason) for r in dynamic]
    assert {r.finish_reason for r in static} == {"eos", "length"}  # rows ended early and were dropped


def test_compiled_decode_steps_give_the_eager_tokens():
    """`compile=True` runs each decode step through torch.compile (inductor, the whole model in one graph, the KV
    buffers written in place; the softmax and the rules' signals too): in float32 the same tokens and switches as
    the eager steps, for rollouts and for lockstep, with grouped key/value heads (the grouped decode attention
    inside the graph)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from compute import decoders
    from compute.cross_sampling import SwitchRule, cross_sample

    models = []
    for seed in (3, 4):
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, intermediate_size=64, pad_token_id=PAD)
        models.append(Qwen2ForCausalLM(config).eval())
    base, rl = models
    prompts = [[5, 6, 7, 8], [9, 10], [5, 6, 7, 8], [13, 14, 15], [9, 10], [11]] * 2
    seeds = list(range(len(prompts)))
    rules = [SwitchRule(("forward", "reverse")[i % 2], ("js", "delta_logp", "entropy")[i % 3], 0.05)
             for i in range(len(prompts))]
    params = SamplingParams(top_p=0.95, max_new_tokens=16)
    torch._dynamo.reset()
    eager = sample(base, prompts, seeds, params, EOS, PAD)
    compiled = sample(base, prompts, seeds, params, EOS, PAD, compile=True)
    assert [(r.response_ids, r.finish_reason) for r in compiled] == [(r.response_ids, r.finish_reason) for r in eager]
    crossed = [cross_sample(base, rl, prompts, seeds, rules, params, EOS, PAD, compile=c) for c in (False, True)]
    assert [(r.response_ids, r.switched_positions) for r in crossed[1]] == \
        [(r.response_ids, r.switched_positions) for r in crossed[0]]
    assert sum(map(len, (r.switched_positions for r in crossed[0]))) > 0  # the rules switched
    from compute.cross_sampling import SwitchRules, _log_dists

    assert all("inductor" in m.__dict__[decoders._HELD] for m in (base, rl))
    assert all("inductor" in decoders._COMPILED[f] for f in (next_token_probs, _log_dists, SwitchRules.signals))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 4  # the model, the softmax, the logs, the signals
    with pytest.raises(ValueError, match="compiled decoding needs a model StaticDecoder drives"):
        base.config._attn_implementation = "flash_attention_2"
        try:
            sample(base, prompts, seeds, params, EOS, PAD, compile=True)
        finally:
            base.config._attn_implementation = "sdpa"
