"""Divergence-weighted advantages (Meng et al., arXiv 2603.22446, the section on using the findings): each
token's advantage is scaled by how far the policy has moved from the base at that token,

    A~_t = w_t * A_t,    w_t = 1 + s * (sigmoid(alpha * D_t) - 1/2)

where D_t is a per-token divergence between the policy's and the base's next-token distributions:
`kl` (default): KL(pi_policy || pi_base), the lake's `token_shifts.kl_rl_base`; `js`: their JS divergence
(`token_shifts.js`); `delta_logp`: log pi_policy(x_t) - log pi_base(x_t) of the sampled token
(`token_shifts.delta_logp`; negative where the policy moved away from the token, giving w_t < 1). For
D_t >= 0 the weight lies in [1, 1 + s/2): tokens where nothing moved keep their advantage.

Pure torch and compute.metrics, nothing else of shiftlake: a verl or TRL loss can call it on its own logits
(the base model's logits come from a frozen copy of the base, as for a KL penalty). Torch is imported where a
function computes, so that the settings can check a kind without it (`shiftlake status` stays torch-free):

    from compute.advantages import divergence, weighted_advantages
    d = divergence(policy_logits, base_logits)                  # [batch, T], no gradient
    advantages = weighted_advantages(advantages, d, alpha=alpha, s=s)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LAKE_COLUMNS = {"kl": "kl_rl_base", "js": "js", "delta_logp": "delta_logp"}  # kind -> its token_shifts column
KINDS = tuple(LAKE_COLUMNS)


def token_weights(d: torch.Tensor, alpha: float, s: float) -> torch.Tensor:
    """w = 1 + s * (sigmoid(alpha * d) - 1/2), elementwise, in float32."""
    import torch

    return 1.0 + s * (torch.sigmoid(alpha * d.float()) - 0.5)


def divergence(policy_logits: torch.Tensor, base_logits: torch.Tensor, kind: str = "kl",
               token_ids: torch.Tensor | None = None) -> torch.Tensor:
    """D_t of every position from [..., vocab] logits of the policy and the base at the same positions;
    `delta_logp` also needs the sampled `token_ids` [...]. No gradient flows through it."""
    import torch

    from compute.metrics import js_divergence, kl_divergence

    if kind not in KINDS:
        raise ValueError(f"divergence kind {kind!r}: choose one of {KINDS}")
    if kind == "delta_logp" and token_ids is None:
        raise ValueError("delta_logp is the sampled token's log-probability ratio: pass token_ids")
    with torch.no_grad():
        lp_policy = torch.log_softmax(policy_logits.float(), -1)
        lp_base = torch.log_softmax(base_logits.float(), -1)
        if kind == "kl":
            return kl_divergence(lp_policy, lp_base)
        if kind == "js":
            return js_divergence(lp_policy, lp_base)
        ids = token_ids.to(lp_policy.device).long().unsqueeze(-1)
        return (lp_policy.gather(-1, ids) - lp_base.gather(-1, ids)).squeeze(-1)


def weighted_advantages(advantages: torch.Tensor, d: torch.Tensor, alpha: float, s: float) -> torch.Tensor:
    """A~ = w(D) * A for per-token `advantages` [batch, T] (a GRPO advantage broadcast over its response's
    tokens) and divergences `d` of the same shape; the weights carry no gradient."""
    if advantages.shape != d.shape:
        raise ValueError(f"advantages {tuple(advantages.shape)} and divergences {tuple(d.shape)} differ in shape")
    return advantages * token_weights(d.detach(), alpha, s).to(advantages.dtype)
