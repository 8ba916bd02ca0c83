"""Seeded, batched sampling from a causal LM with a KV cache.

Every row owns a `torch.Generator` seeded with its rollout's seed and draws one uniform per step, so a
row's tokens depend only on its seed, the model and its prompt, never on the batch it happens to share.
The same primitives (`next_token_probs`, `draw`, `StaticDecoder`, `Loop`) serve evaluation rollouts, GRPO
training and cross-sampling: preallocated KV buffers, one prefill per distinct prompt, a loop that keeps its
tokens on the device and, on a GPU, replays each step as one CUDA graph. Knows nothing about tables or the lake.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import transformers
from transformers import AttentionInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward

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

    def at(self, step: torch.Tensor) -> torch.Tensor:
        """The uniforms of step `step` (a one-element device tensor: a loop captured in a CUDA graph reads it)."""
        return self.table.index_select(1, step).squeeze(1)

    def keep(self, rows: torch.Tensor) -> None:
        self.table = self.table[rows.to(self.table.device)]


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
        """The cached step's next-token log-probs must be those of encoding the whole prefix again.

        Float32: every log-prob within 1e-3. Half precision, where rounding over a deep model moves single
        log-probs of a 150k vocabulary by more than 0.25 (a random 7B-shaped pair in bf16: 0.256): a row fails when
        its mean gap over the vocabulary exceeds 0.02 and half the gap of encoding the last token without its
        prefix, i.e. when the step looks more like a lost prefix than like rounding. Tolerances grow for logits
        beyond 100 in magnitude, where float rounding alone exceeds them (a diverged run's weights give 1e25)."""
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        full = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=positions, use_cache=False,
                          logits_to_keep=1).logits[:, -1]
        reference = torch.log_softmax(full.float(), -1)
        diff = (torch.log_softmax(logits.float(), -1) - reference).abs()
        scale = max(1.0, full.float().abs().amax().item() / 100)
        if logits.dtype in (torch.float32, torch.float64):
            gap, tolerance = diff.amax().item(), 1e-3 * scale
            failed, what = not gap <= tolerance, "max"
        else:
            alone = self.model(input_ids=self.ids[:, -1:], attention_mask=self.mask[:, -1:],
                               position_ids=positions[:, -1:], use_cache=False, logits_to_keep=1).logits[:, -1]
            lost = (torch.log_softmax(alone.float(), -1) - reference).abs().mean(-1)
            row_gap = diff.mean(-1)
            bad = (row_gap > 0.02 * scale) & (row_gap > 0.5 * lost)
            failed, what = bool(bad.any()), "mean"
            gap, tolerance = row_gap.amax().item(), f"max(0.02, half the no-prefix gap {lost.amin().item():.3g})"
        if failed:
            raise KVCacheError(
                f"{type(self.model).__name__}'s KV-cache step differs from re-encoding the prefix ({what} |log p| gap "
                f"{gap:.3g} > {tolerance}; transformers {transformers.__version__}): cached decoding would be "
                "wrong. Install a transformers release shiftlake supports (pyproject.toml).")
        _VERIFIED.add(self.model)
        self.verify = False


class _StaticKV(DynamicCache):
    """`StaticDecoder`'s cache: per layer, keys and values [rows, kv heads, length, head dim] allocated at the first
    write; each write fills positions `at` (a device tensor) of rows `rows`, and attention reads the first
    `visible` positions. A `DynamicCache` otherwise, so the model's forward finds every attribute it looks up;
    `writes` counts the writes, for the decoder's guard."""

    def __init__(self, config, rows: int, length: int):
        super().__init__(config=config)
        self.shape, self.buffers, self.writes, self.seen, self.counting = (rows, length), {}, 0, 0, True
        self.at, self.rows, self.visible = None, slice(None), length

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if layer_idx not in self.buffers:
            rows, length = self.shape
            self.buffers[layer_idx] = tuple(
                t.new_zeros((rows, t.shape[1], length, t.shape[-1])) for t in (key_states, value_states))
        keys, values = self.buffers[layer_idx]
        keys, values = keys[self.rows], values[self.rows]
        keys.index_copy_(2, self.at, key_states)
        values.index_copy_(2, self.at, value_states)
        if self.counting:  # off once the decoder's guards have run: a captured step has no Python side effect
            self.writes += 1
        return keys[:, :, : self.visible], values[:, :, : self.visible]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen


def grouped_decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """sdpa for one new token per row of a model whose key/value heads are shared by several query heads (GQA):
    each key/value head's query heads become its query positions, so the cache is read once, where the stock sdpa
    path copies it once per query head whenever a mask is given on CUDA. Anything else goes to the stock path."""
    rows, heads, length, dim = query.shape
    groups = key.shape[1]
    if length != 1 or heads == groups:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(query.reshape(rows, groups, heads // groups, dim), key,
                                                           value, attn_mask=attention_mask, scale=scaling)
    return out.reshape(rows, 1, heads, dim), None


AttentionInterface.register("shiftlake_grouped_decode", grouped_decode_attention)


def static_decoding(model) -> bool:
    """Can `StaticDecoder` drive `model`? Full attention in every layer (no sliding windows), with an attention
    implementation that takes a prepared 4D mask (sdpa, eager)."""
    config = model.config
    full = all(t == "full_attention" for t in (getattr(config, "layer_types", None) or ["full_attention"]))
    windowed = getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)
    return full and not windowed and getattr(config, "_attn_implementation", None) in ("sdpa", "eager")


class StaticDecoder(Decoder):
    """`Decoder` over preallocated KV buffers with room for `new_tokens` more positions per row, and a prepared
    4D attention mask: every step has the same shapes, writes only into fixed buffers and never waits for the
    host, so a CUDA graph can capture it (`Loop`). The same guards as `Decoder`: a forward that wrote nothing
    into the cache, or a first step that differs from re-encoding the prefix, raises `KVCacheError`."""

    def __init__(self, model, prompts: list[list[int]], pad_id: int, new_tokens: int):
        self.model = model
        device = next(model.parameters()).device
        self.ids, self.mask = left_pad(prompts, pad_id, device)
        rows, width = self.ids.shape
        self.width, self.length = width, width + new_tokens
        self.dtype = next(model.parameters()).dtype
        self.cache = _StaticKV(model.config, rows, self.length)
        self.valid = torch.zeros(rows, self.length, dtype=torch.bool, device=device)
        self.valid[:, :width] = self.mask.bool()
        self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
        self.slot = torch.full((1,), width, dtype=torch.long, device=device)
        self.verify = model not in _VERIFIED
        names = inspect.signature(model.forward).parameters
        self.keyword = "cache" if "cache" in names else "past_key_values"  # the backbone takes the same keyword
        self.cache_position = "cache_position" in names

    def _additive(self, allowed: torch.Tensor) -> torch.Tensor:
        return torch.zeros(allowed.shape, dtype=self.dtype, device=allowed.device).masked_fill_(
            ~allowed, torch.finfo(self.dtype).min)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, at: torch.Tensor,
                 hidden: bool = False) -> torch.Tensor:
        """The next-token logits at the last position [rows, vocab], or with `hidden` the backbone's last hidden
        states at every position [rows, len, hidden size]."""
        self.cache.at, writes = at, self.cache.writes
        extra = {"cache_position": at} if self.cache_position else {}
        model = self.model.get_decoder() if hidden else self.model
        config = self.model.config
        stock = getattr(config, "_attn_implementation_internal", None)
        if stock == "sdpa" and ids.shape[1] == 1:  # one token per row: the cache read once per key/value head
            config._attn_implementation_internal = "shiftlake_grouped_decode"
        failure = None
        kwargs = dict(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                      **{self.keyword: self.cache}, **extra)
        try:
            out = model(**kwargs).last_hidden_state if hidden else model(**kwargs, logits_to_keep=1).logits[:, -1]
        except RuntimeError as e:  # a model that ignores the cache fails on the mask's length
            failure = e
        finally:
            if stock == "sdpa":
                config._attn_implementation_internal = stock
        if self.cache.counting and self.cache.writes == writes:
            raise KVCacheError(
                f"{type(self.model).__name__} did not extend the KV cache it was given (transformers "
                f"{transformers.__version__}): nothing was written into it. Install a transformers release "
                "shiftlake supports (pyproject.toml).") from failure
        if failure is not None:
            raise failure
        return out

    def start(self, hidden: bool = False) -> torch.Tensor:
        """Encode each distinct (left-padded) prompt once, in row chunks, and copy its keys and values to every row
        that has it: the samples and rules of one problem share one prefill. Returns the next-token logits
        [rows, vocab], or with `hidden` the last prompt position's hidden states [rows, hidden size]."""
        rows, width = self.ids.shape
        device = self.ids.device
        distinct, inverse = torch.unique(torch.cat([self.ids, self.mask], 1), dim=0, return_inverse=True)
        ids, mask = distinct[:, :width], distinct[:, width:]
        query = key = torch.arange(width, device=device)  # the prompt attends to the prompt only
        causal = key[None, :] <= query[:, None]
        itself = key[None, :] == query[:, None]  # a pad position sees itself: no row of the mask is empty
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        prefill = _StaticKV(self.model.config, len(distinct), width)
        self.cache, main = prefill, self.cache
        chunk = max(1, min(len(distinct), 32768 // width, 2 ** 27 // (width * width)))
        logits = []
        for lo in range(0, len(distinct), chunk):
            sl = slice(lo, lo + chunk)
            allowed = (mask[sl, None, :].bool() & causal) | itself
            prefill.rows, prefill.visible = sl, width
            out = self._forward(ids[sl], self._additive(allowed)[:, None], positions[sl], query, hidden)
            logits.append(out[:, -1] if hidden else out)
        self.cache = main
        for layer, pair in prefill.buffers.items():
            main.buffers[layer] = tuple(t.new_zeros((rows, t.shape[1], self.length, t.shape[-1])) for t in pair)
            for full, part in zip(main.buffers[layer], pair):
                full[:, :, :width] = part[inverse]
        main.writes, main.seen = prefill.writes, width
        self.positions = self.positions[:, -1:].clone()
        return torch.cat(logits)[inverse]

    def extend(self, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-force `ids` [rows, n] (right-padded) after the prompts in one pass; returns the backbone's hidden
        states at those positions [rows, n, hidden size] (position i predicts token i + 1). A real token never
        attends to the padding after it, so the padding needs no mask."""
        rows, n = ids.shape
        device = self.valid.device
        new = torch.arange(n, device=device)
        allowed = torch.cat([self.valid[:, None, : self.width].expand(rows, n, self.width),
                             (new[None, :] <= new[:, None]).expand(rows, n, n)], dim=2)
        self.cache.visible = self.width + n
        out = self._forward(ids.to(device), self._additive(allowed)[:, None], self.positions + 1 + new,
                            self.width + new, hidden=True)
        self.cache.visible = self.length
        return out

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every row but `rows` (a decoding loop drops rows that have ended; not inside a CUDA graph)."""
        rows = rows.to(self.valid.device)
        self.valid, self.positions = self.valid[rows], self.positions[rows]
        self.ids, self.mask = self.ids[rows], self.mask[rows]
        self.cache.buffers = {layer: tuple(t[rows] for t in pair) for layer, pair in self.cache.buffers.items()}
        self.cache.shape = (len(rows), self.length)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.view(-1, 1).to(self.valid.device)
        if self.verify:  # the prefix is kept only for the one re-encode
            self.ids = torch.cat([self.ids, ids], dim=1)
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.valid.index_fill_(1, self.slot, True)
        self.positions += 1
        # attention reads the positions written so far, except in a CUDA graph, where every step reads them all
        visible = self.length if self.valid.is_cuda else self.cache.seen + 1
        self.cache.visible = visible
        mask = self._additive(self.valid[:, :visible])[:, None, None, :]
        logits = self._forward(ids, mask, self.positions, self.slot)
        self.slot += 1
        self.cache.seen += 1
        if self.verify:
            self._check_against_reencode(logits)
        self.cache.counting = False  # the guards have run on the prefill and this first step
        return logits


def decoder_for(model, prompts: list[list[int]], pad_id: int, new_tokens: int, decoder=None):
    """The decoder of `model` for a batch: `StaticDecoder` where the model allows it, else `Decoder`; `decoder`, a
    class with `Decoder`'s constructor (tests pass a re-encoding reference), overrides the choice."""
    if decoder is not None:
        return decoder(model, prompts, pad_id)
    if static_decoding(model):
        return StaticDecoder(model, prompts, pad_id, new_tokens)
    return Decoder(model, prompts, pad_id)


CPU_CHECK_EVERY = 4
KEEP_BELOW = 0.75  # off a GPU, rows that ended leave the batch once the live share falls below this
WARM_STEPS = 2  # eager steps before a CUDA graph is captured (lazy allocations, the decoders' first-step guards)


class Loop:
    """The bookkeeping of a decoding loop whose steps stay on the device.

    A step reads the step number from `at` (a device tensor it increments) and writes its per-row outputs with
    `write(name, values)` into column `at` of a device buffer [rows, steps]. `run` calls the step up to `steps`
    times; every `check_every` steps it copies the new columns to host buffers over all rows, feeds the tokens to
    `Ends` and stops once every row has ended. Where a CUDA graph is allowed, steps after the first `WARM_STEPS`
    replay one captured graph. Elsewhere rows that have ended are dropped from the device state once a quarter of
    them has (`keep` is called with the rows that stay), so later steps compute only live rows.
    """

    def __init__(self, rows: int, steps: int, device, outputs: dict[str, torch.dtype]):
        self.steps, self.at = steps, torch.zeros(1, dtype=torch.long, device=device)
        self.rows = torch.arange(rows)  # the original index of each row still on the device
        self.out = {name: torch.zeros(rows, steps, dtype=dtype, device=device) for name, dtype in outputs.items()}
        self.host = {name: torch.zeros(rows, steps, dtype=dtype) for name, dtype in outputs.items()}

    def write(self, name: str, values: torch.Tensor) -> None:
        self.out[name].index_copy_(1, self.at, values.view(-1, 1).to(self.out[name].dtype))

    def run(self, step, ends: Ends, responses: list[list[int]], decoders: list, graph: bool | None,
            check_every: int | None, keep) -> None:
        """`graph` and `check_every` as `sample` takes them; `keep` is used where every decoder can drop rows."""
        graph = capturable(decoders, self.at.device, graph)
        check_every = check_every or (16 if self.at.device.type == "cuda" else CPU_CHECK_EVERY)
        keep = keep if all(hasattr(d, "keep") for d in decoders) else None
        captured, fed = None, 0
        for i in range(self.steps):
            if graph and i >= WARM_STEPS:
                if captured is None:
                    torch.cuda.synchronize()
                    captured = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(captured):
                        step()
                captured.replay()
            else:
                step()
            if (i + 1) % check_every and i < self.steps - 1:
                continue
            for name, buffer in self.out.items():
                self.host[name][self.rows, fed: i + 1] = buffer[:, fed: i + 1].cpu()
            ends.feed(self.host["tokens"][:, fed: i + 1], responses)
            fed = i + 1
            if bool(ends.done.all()):
                return
            live = ~ends.done[self.rows]
            if keep is not None and not graph and live.sum() <= KEEP_BELOW * len(self.rows):
                stay = live.nonzero().flatten()  # on the host: each part moves it to its own device
                self.rows = self.rows[stay]
                self.out = {name: buffer[stay.to(buffer.device)] for name, buffer in self.out.items()}
                keep(stay)


def _dynamic_rope(config) -> bool:
    """Dynamic RoPE scaling compares the sequence length on the device with a host value every step: a CUDA graph
    cannot capture that."""
    scaling = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
    return isinstance(scaling, dict) and "dynamic" in (scaling.get("rope_type"), scaling.get("type"))


def capturable(decoders, device: torch.device, graph: bool | None) -> bool:
    """Whether `Loop.run` may capture the loop: asked for (None: wherever it can), on one CUDA device, with static
    decoders only."""
    possible = device.type == "cuda" and all(isinstance(d, StaticDecoder) and d.valid.device == device
                                             and not _dynamic_rope(d.model.config) for d in decoders)
    if graph and not possible:
        raise ValueError("CUDA-graph decoding needs every model on one CUDA device, driven by StaticDecoder, without "
                         "dynamic RoPE scaling")
    return possible if graph is None else graph


@torch.inference_mode()
def sample(model, prompts: list[list[int]], seeds: list[int], params: SamplingParams,
           stops: Stops | int | Iterable[int], pad_id: int, decoder=None, graph: bool | None = None,
           check_every: int | None = None) -> list[Sampled]:
    """Sample one response per prompt; row i is reproducible from (model, prompts[i], seeds[i], params, stops).

    A response ends at any stop id or stop string of `stops` (`compute.prompts.Stops`; an id or ids alone are
    accepted), the token that ended it included, or after `params.max_new_tokens`. The loop stays on the device
    (`Loop`): ends are looked at every `check_every` steps (default: 16 on CUDA, 4 on CPU); `graph` asks for a
    CUDA graph (None: wherever possible).
    """
    steps = params.max_new_tokens
    dec = decoder_for(model, prompts, pad_id, steps, decoder)
    device = dec.ids.device
    rng = RowGenerators(seeds, steps, device)
    loop = Loop(len(prompts), steps, device, {"tokens": torch.long})
    state = {"logits": dec.start().clone()}

    def step():
        token = draw(next_token_probs(state["logits"], params), rng.at(loop.at))
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
