"""KV-cache decoders of a causal LM over a left-padded batch: `start()` encodes the prompts once, `step(ids)`
appends one token per row, and each returns the next-token logits.

`StaticDecoder` keeps preallocated KV buffers with room for every new token and a prepared 4D attention mask,
encodes each distinct prompt once and copies its keys and values to every row that has it; every step has the same
shapes, so a CUDA graph can capture it (`loop.Loop`). `Decoder` grows a `DynamicCache`, for models the static one
cannot drive (sliding-window attention); `decoder_for` picks one. Both guard the cache: a model that does not extend
it, or a first step that differs from re-encoding the prefix, raises `KVCacheError` instead of decoding without the
prefix. A static decoder's steps can run under torch.compile (`compiled`: fewer, fused kernels per step),
for `compute.benchmark` to weigh; each shape compiles once. Also the padding helpers (`left_pad`, `right_pad`).
Knows nothing about sampling, tables or the lake.
Kept whole although over 250 lines: `StaticDecoder` subclasses `Decoder` and shares its guards (`KVCacheError`,
`_VERIFIED`, the re-encode check), and its cache class and attention hook exist only for it: a split would scatter
one mechanism.
"""

from __future__ import annotations

import inspect
import weakref

import torch
import transformers
from transformers import AttentionInterface, DynamicCache
from transformers.integrations.sdpa_attention import sdpa_attention_forward


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
        if self.rows != slice(None):  # the prefill's chunks; decode steps write every row of the buffers
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
    host, so a CUDA graph can capture it (`loop.Loop`). The same guards as `Decoder`: a forward that wrote nothing
    into the cache, or a first step that differs from re-encoding the prefix, raises `KVCacheError`."""

    def __init__(self, model, prompts: list[list[int]], pad_id: int, new_tokens: int, compile: bool = False):
        self.model, self.compiled = model, compiled(model) if compile else None
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
        if self.compiled is not None and ids.shape[1] == 1 and not hidden and not self.cache.counting:
            model = self.compiled  # a decode step after the guards: one fixed shape, compiled once per batch size
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
        self.cache.shape, self.cache.rows = (len(rows), self.length), slice(0, len(rows))

    def fork(self, rows: torch.Tensor, most: int | None = None) -> None:
        """Append a copy of each row of `rows` after the others (a decoding loop whose rows split; not inside a CUDA
        graph). The KV buffers keep room for more rows, doubling when full (up to `most` rows), so a fork copies its
        new rows only."""
        rows = rows.to(self.valid.device)
        n, k = len(self.valid), len(rows)
        room = max(n + k, min(2 * n, most or 2 * n))
        self.valid, self.positions = torch.cat([self.valid, self.valid[rows]]), torch.cat([self.positions,
                                                                                            self.positions[rows]])
        self.ids, self.mask = torch.cat([self.ids, self.ids[rows]]), torch.cat([self.mask, self.mask[rows]])
        for layer, pair in self.cache.buffers.items():
            if n + k > len(pair[0]):
                pair = tuple(torch.cat([t[:n], t.new_zeros((room - n, *t.shape[1:]))]) for t in pair)
                self.cache.buffers[layer] = pair
            for t in pair:
                t[n: n + k] = t[rows]
        self.cache.shape, self.cache.rows = (n + k, self.length), slice(0, n + k)

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.view(-1, 1).to(self.valid.device)
        if self.verify:  # the prefix is kept only for the one re-encode
            self.ids = torch.cat([self.ids, ids], dim=1)
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.valid.index_fill_(1, self.slot, True)
        self.positions += 1
        # attention reads the positions written so far, except in a CUDA graph or a compiled step, where every step
        # reads them all (one shape)
        visible = self.length if self.valid.is_cuda or self.compiled is not None else self.cache.seen + 1
        self.cache.visible = visible
        mask = self._additive(self.valid[:, :visible])[:, None, None, :]
        logits = self._forward(ids, mask, self.positions, self.slot)
        self.slot += 1
        self.cache.seen += 1
        if self.verify:
            self._check_against_reencode(logits)
        self.cache.counting = False  # the guards have run on the prefill and this first step
        return logits


def decoder_for(model, prompts: list[list[int]], pad_id: int, new_tokens: int, decoder=None,
                compile: bool = False):
    """The decoder of `model` for a batch: `StaticDecoder` where the model allows it, else `Decoder`; `decoder`, a
    class with `Decoder`'s constructor (tests pass a re-encoding reference), overrides the choice. `compile`: the
    static decoder's steps run `compiled(model)`; a model it cannot drive raises ValueError."""
    if decoder is not None:
        return decoder(model, prompts, pad_id)
    if static_decoding(model):
        return StaticDecoder(model, prompts, pad_id, new_tokens, compile)
    if compile:
        raise ValueError(f"compiled decoding needs a model StaticDecoder drives (full attention, sdpa or eager): "
                         f"{type(model).__name__} has sliding windows or attention {model.config._attn_implementation!r}")
    return Decoder(model, prompts, pad_id)


_COMPILED: dict = {}  # function -> {backend: compiled}; a model holds its own (`_HELD`), freed with it
_HELD = "_shiftlake_compiled"
COMPILE_BACKEND = "inductor"  # tests of the code around it may pick a faster one


def compiled(fn):
    """`fn`, a model or a function, under `torch.compile` (whole graph, static shapes), one per `fn` and process: a
    model's decode step, cache writes and attention included, or a step's vocabulary-wide arithmetic, in fewer,
    fused kernels, which the loop's CUDA graph captures as they are (no CUDA graphs of their own). Each shape
    (rows, prompt width + new tokens) compiles once: a study whose batches differ in shape would need them
    bucketed first."""
    held = fn.__dict__.setdefault(_HELD, {}) if isinstance(fn, torch.nn.Module) else _COMPILED.setdefault(fn, {})
    if COMPILE_BACKEND not in held:
        held[COMPILE_BACKEND] = torch.compile(fn, backend=COMPILE_BACKEND, fullgraph=True, dynamic=False)
    return held[COMPILE_BACKEND]


def _dynamic_rope(config) -> bool:
    """Dynamic RoPE scaling compares the sequence length on the device with a host value every step: a CUDA graph
    cannot capture that."""
    scaling = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None) or {}
    return isinstance(scaling, dict) and "dynamic" in (scaling.get("rope_type"), scaling.get("type"))
