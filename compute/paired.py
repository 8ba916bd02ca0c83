"""Teacher-forced paired pass: both models read the same prompt + response, and every response token
gets the `compute.metrics` comparison of their next-token distributions at that position.

Each model encodes each distinct prompt of a batch once (`decoders.StaticDecoder`: the samples of one problem
share it) and then all the batch's responses in one pass over the prompts' keys and values; models that
decoder cannot drive (sliding-window attention) read whole right-padded sequences instead. Memory: the
backbones run once per batch ([rows, len, hidden]); the vocabulary projection and the metrics run over at most
`chunk_tokens` response positions at a time, so float32 [batch, seq, vocab] logits never exist. On CUDA the
metrics run compiled (`torch.compile`, one fixed chunk shape), falling back to eager kernels where compiling fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from compute.decoders import StaticDecoder, right_pad, static_decoding
from compute.metrics import token_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairedParams:
    batch_size: int = 0  # sequences per pass; 0: as many as keep a pass near TOKENS_PER_PASS tokens
    chunk_tokens: int = 2048
    compile: bool | None = None  # compiled metrics: None = on CUDA


TOKENS_PER_PASS = {"cuda": 32768, "cpu": 8192}


def sequences_per_pass(lengths: list[int], device: torch.device) -> int:
    return max(1, TOKENS_PER_PASS[device.type] // max(max(lengths, default=1), 1))


def _hidden_padded(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> torch.Tensor:
    """[rows, max response, hidden]: row i, position t predicts response token t (whole sequences, right-padded)."""
    device = next(model.parameters()).device
    ids, mask = right_pad([p + r for p, r in zip(prompts, responses)], pad_id, device)
    h = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    width = max(map(len, responses))
    index = torch.tensor([[min(len(p) - 1 + t, ids.shape[1] - 1) for t in range(width)] for p in prompts], device=device)
    return h.gather(1, index.unsqueeze(-1).expand(-1, -1, h.shape[-1]))


def _hidden_shared(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> torch.Tensor:
    """As `_hidden_padded`, with one prefill per distinct prompt and the responses over its keys and values."""
    width = max(map(len, responses))
    decoder = StaticDecoder(model, prompts, pad_id, width)
    first = decoder.start(hidden=True)
    if width == 1:
        return first[:, None]
    ids = torch.tensor([r[:-1] + [pad_id] * (width - max(len(r), 1)) for r in responses])  # tokens 0 .. width-2
    return torch.cat([first[:, None], decoder.extend(ids)], dim=1)


def hidden_states(model, prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> torch.Tensor:
    """[rows, max response, hidden]: the backbone's states that predict each response token, shared prefill where
    `StaticDecoder` can drive the model, whole padded sequences elsewhere."""
    return (_hidden_shared if static_decoding(model) else _hidden_padded)(model, prompts, responses, pad_id)


class _Metrics:
    """`token_metrics` over chunks of exactly `chunk` positions: compiled on CUDA (one shape, one compile), eager
    where compiling is off or fails (logged once)."""

    compiled = {}

    def __init__(self, chunk: int, device: torch.device, compile: bool | None):
        self.chunk = chunk
        self.fn = token_metrics
        if compile if compile is not None else device.type == "cuda":
            self.fn = self.compiled.setdefault("fn", torch.compile(token_metrics, dynamic=False))

    def __call__(self, logits_base, logits_rl, targets):
        n = len(targets)
        if self.fn is not token_metrics and n < self.chunk:  # pad to the one compiled shape
            pad = self.chunk - n
            logits_base = torch.cat([logits_base, logits_base[-1:].expand(pad, -1)])
            logits_rl = torch.cat([logits_rl, logits_rl[-1:].expand(pad, -1)])
            targets = torch.cat([targets, targets[-1:].expand(pad)])
        try:
            out = self.fn(logits_base, logits_rl, targets)
        except Exception as e:  # an inductor that cannot compile this: eager kernels, same results
            if self.fn is token_metrics:
                raise
            log.warning("compiled paired metrics failed (%s: %s); using eager kernels", type(e).__name__, e)
            self.compiled["fn"] = self.fn = token_metrics
            out = self.fn(logits_base, logits_rl, targets)
        return {name: t[:n] for name, t in out.items()}


@torch.inference_mode()
def paired_metrics(base, rl, prompts: list[list[int]], responses: list[list[int]], pad_id: int,
                   params: PairedParams = PairedParams()) -> dict[str, np.ndarray]:
    """Metrics for every response token of every (prompt, response), in order: rollout-major, then position.

    Returns numpy columns, plus `row` (index of the rollout) and `position` (0-based within its response).
    """
    columns: dict[str, list[np.ndarray]] = {}
    device = next(base.parameters()).device
    batch = params.batch_size or sequences_per_pass([len(p) + len(r) for p, r in zip(prompts, responses)], device)
    metrics = _Metrics(params.chunk_tokens, device, params.compile)
    for start in range(0, len(prompts), batch):
        batch_p = prompts[start: start + batch]
        batch_r = responses[start: start + batch]
        if not any(batch_r):
            continue
        hidden = [hidden_states(m, batch_p, batch_r, pad_id) for m in (base, rl)]
        rows = torch.cat([torch.full((len(r),), i, dtype=torch.long) for i, r in enumerate(batch_r)])
        pos = torch.cat([torch.arange(len(r), dtype=torch.long) for r in batch_r])
        targets = torch.tensor([t for r in batch_r for t in r], device=device)
        for lo in range(0, len(rows), params.chunk_tokens):
            sl = slice(lo, lo + params.chunk_tokens)
            logits = [m.get_output_embeddings()(h[rows[sl].to(h.device), pos[sl].to(h.device)]).to(device)
                      for m, h in zip((base, rl), hidden)]
            out = metrics(*logits, targets[sl])
            out["row"] = rows[sl] + start
            out["position"] = pos[sl].to(torch.int32)
            out["token_id"] = targets[sl].to(torch.int32)
            for name, t in out.items():
                columns.setdefault(name, []).append(t.cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in columns.items()}
