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


@pytest.mark.parametrize("lake", ["local"], indirect=True)
def test_the_advantage_weights_table_weights_every_own_token_by_the_formula(lake):
    """One row per token of the checkpoint's own rollouts, keyed by (rollout_id, position), its weight the formula
    on the configured divergence's token_shifts column (alpha = s = 1 and kl by default), computed here by hand."""
    import dataclasses

    import numpy as np
    import polars as pl

    from compute import lakesql, tables
    from compute.settings import Settings

    url, keys = lake
    weights = lakesql.run("SELECT * FROM advantage_weights", url)
    own = lakesql.run("SELECT * FROM token_shifts WHERE policy = 'rl'", url)
    assert weights.height == own.height > 0 and set(weights["checkpoint"]) == set(keys)
    assert not weights.select("checkpoint", "rollout_id", "position").is_duplicated().any()
    both = weights.join(own, on=["checkpoint", "rollout_id", "position"], how="inner", suffix="_ts")
    assert both.height == own.height and (both["token_id"] == both["token_id_ts"]).all()
    kl = both["kl_rl_base"].to_numpy().astype(np.float64)
    np.testing.assert_allclose(both["weight"].to_numpy(), 1 + (1 / (1 + np.exp(-kl)) - 0.5), rtol=1e-6)
    assert set(weights["divergence"]) == {"kl"} and set(weights["alpha"]) == {1.0} and set(weights["s"]) == {1.0}
    assert weights["weight"].min() >= 1.0 and weights["weight"].max() < 1.5  # KL >= 0: w in [1, 1 + s/2)
    # the other divergences, from the same frame: js in [1, 1 + s/2), delta_logp below 1 where the token lost mass
    frame = lakesql.run(f"SELECT * FROM token_shifts WHERE checkpoint = '{keys[-1]}'", url)
    for kind, column in (("js", "js"), ("delta_logp", "delta_logp")):
        made = tables.advantage_weights(frame, kind, alpha=4.0, s=0.5)
        d = made["d"].to_numpy().astype(np.float64)
        assert (made["d"] == frame.filter(pl.col("policy") == "rl").sort("rollout_id", "position")[column]).all()
        np.testing.assert_allclose(made["weight"].to_numpy(), 1 + 0.5 * (1 / (1 + np.exp(-4 * d)) - 0.5), rtol=1e-6)
    assert (made["weight"] < 1).any() == (made["d"] < 0).any()
    with pytest.raises(ValueError, match="SHIFTLAKE_ADVANTAGE_DIVERGENCE='entropy': choose one of kl, js, delta_logp"):
        dataclasses.replace(Settings(), advantage_divergence="entropy").advantage()
