"""Slow references for tests and benchmarks only; no asset uses them.

`ReencodingDecoder` has `decoders.Decoder`'s interface but keeps no KV cache: every step re-encodes the
whole left-padded prefix. Cross-sampling with it must give the same tokens as with the cached decoder.
"""

from __future__ import annotations

import torch

from compute.decoders import left_pad


class ReencodingDecoder:
    def __init__(self, model, prompts: list[list[int]], pad_id: int):
        self.model = model
        device = next(model.parameters()).device
        self.ids, self.mask = left_pad(prompts, pad_id, device)

    def _logits(self) -> torch.Tensor:
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=positions, use_cache=False,
                         logits_to_keep=1)
        return out.logits[:, -1]

    def start(self) -> torch.Tensor:
        return self._logits()

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.ids.device)
        self.ids, self.mask = self.ids[rows], self.mask[rows]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        self.ids = torch.cat([self.ids, ids.view(-1, 1).to(self.ids.device)], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        return self._logits()
