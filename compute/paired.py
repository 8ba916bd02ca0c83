"""Teacher-forced paired pass: both models read the same prompt + response, and every response token
gets the `compute.metrics` comparison of their next-token distributions at that position.

Memory: each model's backbone runs once per batch of sequences ([batch, seq, hidden]); the vocabulary
projection and the metrics run over at most `chunk_tokens` response positions at a time, so float32
[batch, seq, vocab] logits never exist for a whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from compute.metrics import token_metrics
from compute.sampling import right_pad


@dataclass(frozen=True)
class PairedParams:
    batch_size: int = 64
    chunk_tokens: int = 2048


def _hidden_states(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state


@torch.inference_mode()
def paired_metrics(base, rl, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                   params: PairedParams = PairedParams()) -> dict[str, np.ndarray]:
    """Metrics for every response token of every (prompt, response), in order: rollout-major, then position.

    Returns numpy columns, plus `row` (index of the rollout) and `position` (0-based within its response).
    """
    columns: dict[str, list[np.ndarray]] = {}
    device = next(base.parameters()).device
    for start in range(0, len(prompts), params.batch_size):
        batch_p = prompts[start: start + params.batch_size]
        batch_r = responses[start: start + params.batch_size]
        ids, mask = right_pad([p + r for p, r in zip(batch_p, batch_r)], pad_id, device)
        h_base = _hidden_states(base, ids, mask)
        h_rl = _hidden_states(rl, ids.to(next(rl.parameters()).device), mask.to(next(rl.parameters()).device))
        # position t of the hidden states predicts token t + 1
        rows = torch.cat([torch.full((len(r),), i, dtype=torch.long) for i, r in enumerate(batch_r)])
        pos = torch.cat([torch.arange(len(r), dtype=torch.long) for r in batch_r])
        src = torch.cat([torch.arange(len(r), dtype=torch.long) + len(p) - 1 for p, r in zip(batch_p, batch_r)])
        if len(rows) == 0:
            continue
        targets = ids[rows.to(device), (src + 1).to(device)]
        for lo in range(0, len(rows), params.chunk_tokens):
            sl = slice(lo, lo + params.chunk_tokens)
            r_idx, s_idx = rows[sl], src[sl]
            logits_b = base.get_output_embeddings()(h_base[r_idx.to(h_base.device), s_idx.to(h_base.device)])
            logits_r = rl.get_output_embeddings()(h_rl[r_idx.to(h_rl.device), s_idx.to(h_rl.device)])
            metrics = token_metrics(logits_b, logits_r.to(logits_b.device), targets[sl])
            metrics["row"] = r_idx + start
            metrics["position"] = pos[sl].to(torch.int32)
            metrics["token_id"] = targets[sl].to(torch.int32)
            for name, t in metrics.items():
                columns.setdefault(name, []).append(t.cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in columns.items()}
