"""Divergence-weighted advantages: the weight formula against hand computations, the divergences against
the lake's own token metrics, and the weights carrying no gradient."""

import math

import pytest
import torch

from compute.advantages import divergence, token_weights, weighted_advantages
from compute.metrics import token_metrics


def test_weights_match_a_hand_computation():
    # w = 1 + s * (sigmoid(alpha * d) - 1/2): d = 0 keeps A; sigmoid(ln 3) = 3/4; sigmoid(-ln 3) = 1/4
    d = torch.tensor([0.0, math.log(3) / 2, -math.log(3) / 2, 1e6])
    assert token_weights(d, alpha=2.0, s=1.0).tolist() == pytest.approx([1.0, 1.25, 0.75, 1.5])
    assert token_weights(d, alpha=2.0, s=0.4).tolist() == pytest.approx([1.0, 1.1, 0.9, 1.2])
    advantages = torch.tensor([[2.0, 2.0], [-1.0, -1.0]])
    d = torch.tensor([[0.0, math.log(3) / 2], [math.log(3) / 2, 0.0]])
    assert weighted_advantages(advantages, d, alpha=2.0, s=1.0).tolist() == [[2.0, 2.5], [-1.25, -1.0]]
    with pytest.raises(ValueError, match="shape"):
        weighted_advantages(advantages, d[:, :1], alpha=2.0, s=1.0)


def test_divergences_are_the_lakes_token_metrics():
    """kl, js and delta_logp equal token_shifts' kl_rl_base, js and delta_logp on the same logits, for
    [batch, T, vocab] inputs as a trainer's loss has them."""
    g = torch.Generator().manual_seed(0)
    policy, base = torch.randn(3, 5, 17, generator=g) * 2, torch.randn(3, 5, 17, generator=g) * 2
    ids = torch.randint(0, 17, (3, 5), generator=g)
    lake = token_metrics(base.reshape(15, 17), policy.reshape(15, 17), ids.reshape(15))
    for kind, column in (("kl", "kl_rl_base"), ("js", "js"), ("delta_logp", "delta_logp")):
        got = divergence(policy, base, kind, token_ids=ids)
        assert got.shape == (3, 5)
        assert torch.allclose(got.reshape(15), lake[column], atol=1e-6), kind
    assert (divergence(policy, policy) < 1e-6).all()
    with pytest.raises(ValueError, match="token_ids"):
        divergence(policy, base, "delta_logp")
    with pytest.raises(ValueError, match="kind"):
        divergence(policy, base, "tv")


def test_the_weights_carry_no_gradient():
    """Only the policy's log-probabilities carry the gradient, as in the paper: the weights are constants."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 9, generator=g, requires_grad=True)
    base = torch.randn(2, 4, 9, generator=g)
    d = divergence(logits, base)
    assert not d.requires_grad
    advantages = torch.ones(2, 4)
    weighted = weighted_advantages(advantages, d.requires_grad_(), alpha=1.0, s=1.0)
    assert not weighted.requires_grad
