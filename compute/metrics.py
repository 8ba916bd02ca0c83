"""Per-token comparison of two next-token distributions (base vs RL), from their logits.

Natural log, full vocabulary, float32. Input: logits [n, vocab] of each model at the same n positions and
the token actually found there. Output: one float32/int32 tensor per `token_shifts` column.
"""

from __future__ import annotations

import math

import torch

OVERLAP_KS = tuple(range(1, 11))  # overlap_top1 .. overlap_top10
TOP_IDS = 5
LN2 = math.log(2.0)


def _plogp_ratio(p: torch.Tensor, logp: torch.Tensor, logq: torch.Tensor | None = None) -> torch.Tensor:
    """sum_v p (log p - log q) (`logq` None: log q = 0), with 0 * anything = 0. The zero is a scalar and log q = 0
    is not subtracted: the same values as subtracting a zero tensor, two passes over the vocabulary fewer."""
    return torch.where(p > 0, p * (logp if logq is None else logp - logq), 0.0).sum(-1)


def js_divergence(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) of two log-distributions over the last axis."""
    log_m = torch.logaddexp(logp, logq) - LN2
    return (0.5 * _plogp_ratio(logp.exp(), logp, log_m) + 0.5 * _plogp_ratio(logq.exp(), logq, log_m)).clamp(0.0, LN2)


def kl_divergence(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p || q) (nats) of two log-distributions over the last axis."""
    return _plogp_ratio(logp.exp(), logp, logq).clamp_min(0.0)


def entropy(logp: torch.Tensor) -> torch.Tensor:
    return -_plogp_ratio(logp.exp(), logp)


def _rank_of(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """1-based rank of `ids` under `logp` (1 = most likely; ties share the better rank)."""
    chosen = logp.gather(-1, ids.unsqueeze(-1))
    return (logp > chosen).sum(-1).to(torch.int32) + 1


def token_metrics(logits_base: torch.Tensor, logits_rl: torch.Tensor, token_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    lp_b = torch.log_softmax(logits_base.float(), -1)
    lp_r = torch.log_softmax(logits_rl.float(), -1)
    ids = token_ids.to(lp_b.device).long()
    logp_base = lp_b.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    logp_rl = lp_r.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    k = min(max(OVERLAP_KS), lp_b.shape[-1])
    top_b = lp_b.topk(k, dim=-1)
    top_r = lp_r.topk(k, dim=-1)
    out = {
        "js": js_divergence(lp_b, lp_r),
        "kl_rl_base": kl_divergence(lp_r, lp_b),
        "kl_base_rl": kl_divergence(lp_b, lp_r),
        "entropy_base": entropy(lp_b),
        "entropy_rl": entropy(lp_r),
        "logp_base": logp_base,
        "logp_rl": logp_rl,
        "delta_logp": logp_rl - logp_base,
        "rank_base": _rank_of(lp_b, ids),
        "rank_rl": _rank_of(lp_r, ids),
        "top1_base": top_b.indices[:, 0].to(torch.int32),
        "top1_rl": top_r.indices[:, 0].to(torch.int32),
        "rl_top1_rank_in_base": _rank_of(lp_b, top_r.indices[:, 0]),
    }
    for kk in OVERLAP_KS:
        kk_ = min(kk, k)
        shared = (top_b.indices[:, :kk_, None] == top_r.indices[:, None, :kk_]).any(-1).sum(-1)
        out[f"overlap_top{kk}"] = shared.float() / kk_
    out["top5_ids_base"] = top_b.indices[:, :TOP_IDS].to(torch.int32)
    out["top5_logp_base"] = top_b.values[:, :TOP_IDS]
    out["top5_ids_rl"] = top_r.indices[:, :TOP_IDS].to(torch.int32)
    out["top5_logp_rl"] = top_r.values[:, :TOP_IDS]
    return {name: t.float() if t.is_floating_point() else t for name, t in out.items()}
