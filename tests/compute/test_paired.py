"""The paired pass: position alignment against a plain full forward, and chunking that changes nothing."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from compute.metrics import token_metrics
from compute.paired import PairedParams, paired_metrics

VOCAB = 23


def tiny_model(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=64, tie_word_embeddings=True, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def pair_and_data():
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, VOCAB, (int(n),), generator=g).tolist() for n in torch.randint(2, 9, (7,), generator=g)]
    responses = [torch.randint(1, VOCAB, (int(n),), generator=g).tolist() for n in torch.randint(0, 12, (7,), generator=g)]
    responses[2] = []  # an empty response contributes no rows
    return tiny_model(1), tiny_model(2), prompts, responses


def test_rows_align_with_a_full_forward_of_each_sequence(pair_and_data):
    """Row (rollout i, position t) compares the logits that predict response token t of sequence i,
    computed here one sequence at a time with the model's own forward (no padding, no chunking)."""
    base, rl, prompts, responses = pair_and_data
    got = paired_metrics(base, rl, prompts, responses, pad_id=0, params=PairedParams(batch_size=3, chunk_tokens=5))
    assert len(got["js"]) == sum(map(len, responses))
    k = 0
    for i, (p, r) in enumerate(zip(prompts, responses)):
        if not r:
            continue
        ids = torch.tensor([p + r])
        with torch.no_grad():
            lb = base(ids).logits[0, len(p) - 1: len(p) + len(r) - 1]
            lr = rl(ids).logits[0, len(p) - 1: len(p) + len(r) - 1]
        want = token_metrics(lb, lr, torch.tensor(r))
        sl = slice(k, k + len(r))
        assert got["row"][sl].tolist() == [i] * len(r)
        assert got["position"][sl].tolist() == list(range(len(r)))
        assert got["token_id"][sl].tolist() == r
        for name in ("js", "kl_rl_base", "logp_base", "logp_rl", "entropy_base"):
            np.testing.assert_allclose(got[name][sl], want[name].numpy(), atol=2e-5, err_msg=name)
        assert got["rank_base"][sl].tolist() == want["rank_base"].tolist()
        k += len(r)


def test_chunked_and_unchunked_passes_are_identical(pair_and_data):
    """Chunk size and batch size are memory knobs only: ids, ranks and top-k sets come out identical, floats
    equal up to float32 rounding (a [1, hidden] and a [n, hidden] matmul may round differently)."""
    base, rl, prompts, responses = pair_and_data
    small = paired_metrics(base, rl, prompts, responses, 0, PairedParams(batch_size=100, chunk_tokens=1))
    whole = paired_metrics(base, rl, prompts, responses, 0, PairedParams(batch_size=100, chunk_tokens=10_000))
    assert small.keys() == whole.keys()
    for name in whole:
        if np.issubdtype(whole[name].dtype, np.floating):
            np.testing.assert_allclose(small[name], whole[name], rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(small[name], whole[name], err_msg=name)


def test_shared_prefill_equals_whole_padded_sequences(pair_and_data, monkeypatch):
    """One prefill per distinct prompt, then the responses over its keys and values, gives what reading each
    whole right-padded sequence gives (the path of models with sliding-window attention)."""
    import compute.paired as paired

    base, rl, prompts, responses = pair_and_data
    prompts = prompts + [prompts[0]] * 3  # several samples of one prompt share its prefill
    responses = responses + [[5, 6, 7], [8], [9, 10, 11, 12, 13]]
    shared = paired_metrics(base, rl, prompts, responses, 0, PairedParams(batch_size=4, chunk_tokens=6))
    monkeypatch.setattr(paired, "static_decoding", lambda model: False)
    padded = paired_metrics(base, rl, prompts, responses, 0, PairedParams(batch_size=4, chunk_tokens=6))
    for name in padded:
        if np.issubdtype(padded[name].dtype, np.floating):
            np.testing.assert_allclose(shared[name], padded[name], rtol=1e-5, atol=2e-5, err_msg=name)
        else:
            np.testing.assert_array_equal(shared[name], padded[name], err_msg=name)
