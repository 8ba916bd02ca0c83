"""Token metrics against scipy and against plain Python on random distributions."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from compute.metrics import OVERLAP_KS, token_metrics


def _random_logits(n: int, vocab: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(n, 1, generator=g) * 8  # from near-uniform to very peaked rows
    base = torch.randn(n, vocab, generator=g) * scale
    rl = base + torch.randn(n, vocab, generator=g) * torch.rand(n, 1, generator=g) * 3
    rl[:5] = base[:5]  # identical rows: JS and KL exactly 0
    ids = torch.randint(0, vocab, (n,), generator=g)
    return base, rl, ids


@pytest.mark.parametrize("vocab", [7, 50, 1000])
def test_divergences_and_entropies_match_scipy(vocab):
    """JS (nats) is scipy's Jensen-Shannon distance squared; KL and entropy are scipy.stats.entropy."""
    base, rl, ids = _random_logits(64, vocab, seed=vocab)
    m = token_metrics(base, rl, ids)
    p, q = torch.softmax(base.double(), -1).numpy(), torch.softmax(rl.double(), -1).numpy()
    for i in range(len(p)):
        assert m["js"][i].item() == pytest.approx(jensenshannon(p[i], q[i]) ** 2, abs=1e-5)
        assert m["kl_rl_base"][i].item() == pytest.approx(entropy(q[i], p[i]), abs=1e-5)
        assert m["kl_base_rl"][i].item() == pytest.approx(entropy(p[i], q[i]), abs=1e-5)
        assert m["entropy_base"][i].item() == pytest.approx(entropy(p[i]), abs=1e-5)
        assert m["entropy_rl"][i].item() == pytest.approx(entropy(q[i]), abs=1e-5)
    assert torch.all(m["js"][:5] < 1e-7) and torch.all(m["kl_rl_base"][:5] < 1e-7)  # float32 rounding only
    assert torch.all(m["js"] <= np.log(2) + 1e-7)


def test_logps_ranks_and_top_sets_match_plain_python():
    """Ranks are 1-based (1 = most likely); overlap_topk is |top-k(base) & top-k(rl)| / k."""
    base, rl, ids = _random_logits(40, 30, seed=1)
    m = token_metrics(base, rl, ids)
    lp_b = torch.log_softmax(base, -1)
    lp_r = torch.log_softmax(rl, -1)
    for i in range(40):
        order_b = torch.argsort(lp_b[i], descending=True).tolist()
        order_r = torch.argsort(lp_r[i], descending=True).tolist()
        tok = int(ids[i])
        assert m["logp_base"][i].item() == pytest.approx(lp_b[i, tok].item(), abs=1e-6)
        assert m["delta_logp"][i].item() == pytest.approx((lp_r[i, tok] - lp_b[i, tok]).item(), abs=1e-5)
        assert m["rank_base"][i] == order_b.index(tok) + 1
        assert m["rank_rl"][i] == order_r.index(tok) + 1
        assert m["top1_base"][i] == order_b[0] and m["top1_rl"][i] == order_r[0]
        assert m["rl_top1_rank_in_base"][i] == order_b.index(order_r[0]) + 1
        for k in OVERLAP_KS:
            expected = len(set(order_b[:k]) & set(order_r[:k])) / k
            assert m[f"overlap_top{k}"][i].item() == pytest.approx(expected)
        assert m["top5_ids_base"][i].tolist() == order_b[:5]
        assert m["top5_logp_rl"][i].tolist() == pytest.approx(lp_r[i, order_r[:5]].tolist(), abs=1e-6)


def test_zero_probability_tokens_do_not_produce_nan():
    """-inf logits (masked vocabulary) give p = 0; 0 * log 0 must count as 0, not NaN."""
    base = torch.tensor([[0.0, 1.0, float("-inf")], [2.0, float("-inf"), 0.0]])
    rl = torch.tensor([[0.5, 0.5, 0.0], [float("-inf"), 0.0, 0.0]])
    m = token_metrics(base, rl, torch.tensor([0, 2]))
    for name in ("js", "entropy_base", "entropy_rl"):
        assert torch.isfinite(m[name]).all(), name
    assert m["kl_base_rl"][1].item() == float("inf") or m["kl_base_rl"][1].item() > 0
