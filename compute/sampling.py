"""Seeded, batched sampling from a causal LM with a KV cache.

Every row owns a `torch.Generator` seeded with its rollout's seed and draws one uniform per step, so a
row's tokens depend only on its seed, the model and its prompt, never on the batch it happens to share.
The same primitives (`next_token_probs`, `draw`) serve evaluation rollouts, GRPO training and
cross-sampling. Knows nothing about tables or the lake.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import transformers
from transformers import DynamicCache

from compute.prompts import Ends, Stops


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48


@dataclass
class Sampled:
    response_ids: list[int]
    finish_reason: str  # "eos" | "stop_string" | "length"
    stop: str | None = None  # what ended it: the EOS id (as text) or the stop string; None at length


def next_token_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Float32 probabilities [rows, vocab] after temperature and top-p (nucleus) truncation."""
    logits = logits.float()
    if params.temperature <= 0:
        probs = torch.zeros_like(logits)
        return probs.scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(mass_before >= params.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def draw(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: one token id per row from `probs` [rows, vocab] and `uniforms` [rows] in [0, 1)."""
    cdf = probs.cumsum(-1)
    target = (uniforms.to(cdf.device, cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    ids = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return ids.clamp_(max=probs.shape[-1] - 1)


class RowGenerators:
    """One seeded stream of uniforms per row; `uniforms()` gives the next uniform of each row [rows].

    Each row's first `steps` uniforms are drawn up front from its own CPU generator (the same numbers as
    drawing them one at a time) and moved to `device` once, so decoding does no per-row work per step.
    """

    def __init__(self, seeds: list[int], steps: int, device="cpu"):
        table = [torch.rand(steps, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                 for s in seeds]
        self.table = torch.stack(table).to(device) if table else torch.zeros(0, steps, dtype=torch.float64)
        self.step = 0

    def uniforms(self) -> torch.Tensor:
        column = self.table[:, self.step]
        self.step += 1
        return column


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p):] = 1
    return ids.to(device), mask.to(device)


def right_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [rows, width] and their attention mask, for teacher-forced passes."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    mask = (torch.arange(width) < torch.tensor([len(s) for s in seqs]).unsqueeze(1)).long()
    return ids.to(device), mask.to(device)


class KVCacheError(RuntimeError):
    """The model did not extend the KV cache it was given: decoding would silently lose the prefix."""


_VERIFIED = weakref.WeakSet()  # models whose cached steps matched a re-encode


class Decoder:
    """Incremental decoding of one model over a left-padded batch: `start()` encodes the prompts once,
    `step(ids)` appends one token per row; each returns the next-token logits [rows, vocab].

    The cache goes to the model under the keyword its forward takes: `past_key_values` in earlier transformers
    5.x releases, `cache` in later ones (5.24 deprecates `past_key_values`; 5.0-5.17 ignore `cache`). Every
    call checks that the model extended that very cache by the tokens given; the first step of each model
    (once per process) is also compared with a full re-encode of the prefix. Either failing raises
    `KVCacheError` at once instead of sampling from a model that sees one token without its prefix.
    """

    def __init__(self, model, prompts: list[list[int]], pad_id: int):
        self.model = model
        device = next(model.parameters()).device
        self.ids, self.mask = left_pad(prompts, pad_id, device)
        self.cache = DynamicCache(config=model.config)
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.verify = model not in _VERIFIED
        self.keyword = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    def _forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=self.positions,
                         use_cache=True, logits_to_keep=1, **{self.keyword: self.cache})
        if out.get(self.keyword) is not self.cache or self.cache.get_seq_length() != self.mask.shape[1]:
            raise KVCacheError(
                f"{type(self.model).__name__} did not extend the KV cache it was given (transformers "
                f"{transformers.__version__}): its cache holds {self.cache.get_seq_length()} positions, the prefix "
                f"{self.mask.shape[1]}. Install a transformers release shiftlake supports (pyproject.toml).")
        return out.logits[:, -1]

    def start(self) -> torch.Tensor:
        logits = self._forward(self.ids)
        self.positions = self.positions[:, -1:]
        return logits

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.view(-1, 1).to(self.mask.device)
        if self.verify:  # the prefix is kept only for the one re-encode
            self.ids = torch.cat([self.ids, ids], dim=1)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.positions = self.positions + 1
        logits = self._forward(ids)
        if self.verify:
            self._check_against_reencode(logits)
        return logits

    def _check_against_reencode(self, logits: torch.Tensor) -> None:
        """The cached step's next-token log-probs must be those of encoding the whole prefix again (float32: 1e-3;
        half precision: 0.25, far below what a lost prefix does; scaled up for logits beyond 100 in magnitude,
        where float rounding alone exceeds it: the weights of a diverged run give 1e25)."""
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        full = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=positions, use_cache=False,
                          logits_to_keep=1).logits[:, -1]
        gap = (torch.log_softmax(logits.float(), -1) - torch.log_softmax(full.float(), -1)).abs().amax().item()
        tolerance = (1e-3 if logits.dtype == torch.float32 else 0.25) * max(1.0, full.float().abs().amax().item() / 100)
        if not gap <= tolerance:
            raise KVCacheError(
                f"{type(self.model).__name__}'s KV-cache step differs from re-encoding the prefix (max |log p| gap "
                f"{gap:.3g} > {tolerance}; transformers {transformers.__version__}): cached decoding would be "
                "wrong. Install a transformers release shiftlake supports (pyproject.toml).")
        _VERIFIED.add(self.model)
        self.verify = False


@torch.inference_mode()
def sample(model, prompts: list[list[int]], seeds: list[int], params: SamplingParams,
           stops: Stops | int | Iterable[int], pad_id: int) -> list[Sampled]:
    """Sample one response per prompt; row i is reproducible from (model, prompts[i], seeds[i], params, stops).

    A response ends at any stop id or stop string of `stops` (`compute.prompts.Stops`; an id or ids alone are
    accepted), the token that ended it included, or after `params.max_new_tokens`.
    """
    decoder = Decoder(model, prompts, pad_id)
    rng = RowGenerators(seeds, params.max_new_tokens, decoder.ids.device)
    ends = Ends(stops, len(prompts))
    logits = decoder.start()
    responses: list[list[int]] = [[] for _ in prompts]
    for step in range(params.max_new_tokens):
        ids = draw(next_token_probs(logits, params), rng.uniforms()).cpu()
        drawn = ids.tolist()
        for i in torch.nonzero(~ends.done).flatten().tolist():
            responses[i].append(drawn[i])
        done = ends.update(ids, responses)
        if bool(done.all()) or step == params.max_new_tokens - 1:
            break
        logits = decoder.step(ids.masked_fill(done, pad_id))
    return [Sampled(r, *reason) for r, reason in zip(responses, ends.reasons)]
