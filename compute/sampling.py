"""Seeded, batched sampling from a causal LM with a KV cache.

Every row owns a `torch.Generator` seeded with its rollout's seed and draws one uniform per step, so a
row's tokens depend only on its seed, the model and its prompt, never on the batch it happens to share.
The same primitives (`next_token_probs`, `draw`, `RowGenerators`, with `decoders.StaticDecoder` and `loop.Loop`)
serve evaluation rollouts, GRPO training and cross-sampling; `sample` is the one-model entry point over them.
Knows nothing about tables or the lake.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from compute.decoders import compiled, decoder_for
from compute.loop import Loop
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
    probs = torch.softmax(logits if params.temperature == 1 else logits / params.temperature, dim=-1)
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

    def at(self, step: torch.Tensor) -> torch.Tensor:
        """The uniforms of step `step` (a one-element device tensor: a loop captured in a CUDA graph reads it)."""
        return self.table.index_select(1, step).squeeze(1)

    def keep(self, rows: torch.Tensor) -> None:
        self.table = self.table[rows.to(self.table.device)]


@torch.inference_mode()
def sample(model, prompts: list[list[int]], seeds: list[int], params: SamplingParams,
           stops: Stops | int | Iterable[int], pad_id: int, decoder=None, graph: bool | None = None,
           check_every: int | None = None, compile: bool = False) -> list[Sampled]:
    """Sample one response per prompt; row i is reproducible from (model, prompts[i], seeds[i], params, stops).

    A response ends at any stop id or stop string of `stops` (`compute.prompts.Stops`; an id or ids alone are
    accepted), the token that ended it included, or after `params.max_new_tokens`. The loop stays on the device
    (`loop.Loop`): ends are looked at every `check_every` steps (default: 16 on CUDA, 4 on CPU); `graph` asks for a
    CUDA graph (None: wherever possible); `compile` runs the model's decode step and the softmax compiled
    (`decoders.compiled`).
    """
    steps = params.max_new_tokens
    dec = decoder_for(model, prompts, pad_id, steps, decoder, compile)
    probs = compiled(next_token_probs) if compile else next_token_probs
    device = dec.ids.device
    rng = RowGenerators(seeds, steps, device)
    loop = Loop(len(prompts), steps, device, {"tokens": torch.long})
    state = {"logits": dec.start().clone()}

    def step():
        token = draw(probs(state["logits"], params), rng.at(loop.at))
        loop.write("tokens", token)
        state["logits"].copy_(dec.step(token))
        loop.at.add_(1)

    def keep(rows):
        state["logits"] = state["logits"][rows.to(device)]
        rng.keep(rows)
        dec.keep(rows)

    ends, responses = Ends(stops, len(prompts)), [[] for _ in prompts]
    loop.run(step, ends, responses, [dec], graph, check_every, keep)
    return [Sampled(r, *reason) for r, reason in zip(responses, ends.reasons)]
